import Foundation

/// A scratch directory removed when the value is dropped.
package final class ScratchDirectory {
    package let path: String
    package init() {
        path = NSTemporaryDirectory() + "eddy-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    package func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        FileManager.default.createFile(atPath: p, contents: Data(text.utf8))
        return p
    }
}

extension ScratchDirectory {
    package func copy(_ source: String, as name: String) throws {
        let dest = path + "/" + name
        try? FileManager.default.removeItem(atPath: dest)
        try FileManager.default.copyItem(atPath: source, toPath: dest)
    }

    package func plugins() throws -> ScratchDirectory {
        let d = ScratchDirectory()
        try d.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try d.copy(PluginFiles.built("EddyPluginPackedDictCompare"), as: "packed.so")
        return d
    }
}

extension ScratchDirectory {
    package static func write(at path: String, _ text: String) -> String {
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }
}
