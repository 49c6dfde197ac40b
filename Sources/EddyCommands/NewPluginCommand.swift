import ArgumentParser
@_spi(Host) import EddyHost
import EddyIO

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy new-plugin NAME`: a standalone plugin package that builds, passes the conformance kit and
/// loads unchanged.
struct NewPluginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new-plugin",
        abstract: "Create a kernel plugin package: a dynamic library product, a kernel target, an entry target, "
            + "a test target running the conformance kit, and a README.",
        discussion: """
            Then, in the new directory: `swift test` (the conformance kit), and `swift build -c release` and \
            copy .build/release/libMODULE.so into a plugin directory (a running `eddy serve` loads it on its \
            next scan). Deploy release builds: a debug build's kernels run several times slower, and \
            `eddy plugins` says "debug build" for one.
            """
    )

    @Argument(help: "The plugin's name: a letter, then letters, digits, '-' or '_' (at most 64).")
    var name: String

    @Option(help: "The directory to create the package in (the package is PATH/NAME).")
    var path = "."

    @Option(
        help: "The plugin-sdk package to build against (default: the plugin-sdk of the checkout that built this eddy).")
    var sdk: String?

    /// A failure is `eddy: error: …` and exit status 1 (a ValidationError thrown from here printed the
    /// top-level usage under it, not this command's).
    func run() throws {
        do {
            try create()
        } catch let e as ValidationError {
            Stderr.write("eddy: error: \(e.message)\n")
            throw ExitCode(1)
        }
    }

    /// Checks the name and the SDK, then writes the package; `--path` is created when missing, as
    /// `mkdir -p` would.
    private func create() throws {
        try Self.checkName(name)
        let sdkReal = try checkedSDK()
        let module = try Self.checkedModule(name)
        try makeDirectories(path)
        guard let parent = realPath(path) else {
            throw ValidationError("--path \(PluginHost.escaped(path)): no such directory")
        }
        let root = parent + "/" + name
        if mkdir(root, 0o755) != 0 {
            throw ValidationError(
                "cannot create \(PluginHost.escaped(root)): "
                    + (errno == EEXIST
                        ? "it already exists (pick another name or --path)" : String(cString: strerror(errno))))
        }
        // SwiftPM names a path dependency after the directory's last component.
        let sdkPackage = sdkReal.split(separator: "/").last.map(String.init) ?? "plugin-sdk"
        let files = Self.files(name: name, module: module, sdk: sdkReal, sdkPackage: sdkPackage)
        for (relative, text) in files {
            var dir = root
            for part in relative.split(separator: "/").dropLast() {
                dir += "/" + part
                if mkdir(dir, 0o755) != 0 && errno != EEXIST {
                    throw ValidationError(
                        "cannot create \(PluginHost.escaped(dir)): \(String(cString: strerror(errno)))")
                }
            }
            try write(root + "/" + relative, text)
        }
        print(
            "created \(PluginHost.escaped(root)) (plugin \(name), module \(module), SDK \(PluginHost.escaped(sdkReal)))"
        )
        for (relative, _) in files { print("  " + relative) }
        print(
            """

            next:
              cd \(PluginHost.escaped(root))
              swift test                     # the conformance kit checks the kernel against decode-then-compute
              swift build -c release && install -m 644 .build/release/lib\(module).so PLUGIN_DIR/   # eddy serve loads it
            """)
    }

    /// A letter, then letters, digits, '-' or '_' (at most 64).
    static func checkName(_ name: String) throws {
        guard let first = name.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic, name.count <= 64,
            name.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
            })
        else {
            throw ValidationError(
                "plugin name '\(PluginHost.escaped(name))': expected a letter, then letters, digits, "
                    + "'-' or '_' (at most 64 characters)")
        }
    }

    /// The module name for a valid plugin name, once none of the package's targets (MODULE, MODULEEntry and
    /// MODULETests) would shadow a module the package imports or the toolchain provides.
    static func checkedModule(_ name: String) throws -> String {
        let module = moduleName(name)
        let taken = [
            "Self", "Type", "Any", "AnyObject", "Protocol", "Int", "String", "Bool", "Double", "Array", "Optional",
            "Crypto", "NIO", "NIOCore", "Logging", "ArgumentParser", "Hummingbird", "Collections", "Algorithms",
            "Eddy", "EddyTesting", "EddyKernelsC", "EddyTestSupport", "EddySDK", "EddySDKTests", "Testing", "XCTest",
            "Foundation", "FoundationEssentials",
            "Dispatch", "Glibc", "Musl", "Swift", "SwiftShims", "Synchronization", "Observation", "_Concurrency",
            "RegexBuilder", "Darwin", "PackageDescription", "CoreFoundation",
        ]
        // The package is named after the plugin, and SwiftPM names a package by its directory: the SDK's own.
        if name.lowercased() == "plugin-sdk" {
            throw ValidationError(
                "plugin name '\(name)' is the name of the SDK's package, which the plugin depends on; pick another name"
            )
        }
        for target in [module, module + "Entry", module + "Tests"]
        where taken.contains(where: { $0.lowercased() == target.lowercased() }) {
            throw ValidationError(
                "plugin name '\(name)' makes a target named \(target), which clashes with a module of the SDK "
                    + "or the toolchain; pick another name")
        }
        return module
    }

    /// The real path of the plugin-sdk package to build against (`--sdk`, else the checkout that built eddy).
    private func checkedSDK() throws -> String {
        guard let sdkPath = sdk ?? PluginHost.sdkCheckout else {
            throw ValidationError("the plugin-sdk of the checkout that built this eddy is gone; pass --sdk PATH")
        }
        guard let sdkReal = realPath(sdkPath), isFile(sdkReal + "/Package.swift"),
            isFile(sdkReal + "/Sources/Eddy/Plugin/PluginABI.swift")
        else {
            throw ValidationError(
                "--sdk \(PluginHost.escaped(sdkPath)): not the Eddy plugin-sdk package "
                    + "(expected Package.swift and Sources/Eddy there)")
        }
        // The path is written into Package.swift and the README as a string literal.
        guard
            !sdkReal.unicodeScalars.contains(where: {
                $0 == "\"" || $0 == "\\" || $0.properties.generalCategory == .control
            })
        else {
            throw ValidationError(
                "--sdk \(PluginHost.escaped(sdkReal)): a path with quotes, backslashes or control "
                    + "characters cannot be written into Package.swift; move or link the SDK")
        }
        return sdkReal
    }

    /// `path` and its missing parents, mode 0755 (an existing directory is fine; anything else in the
    /// way is an error naming it).
    private func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw ValidationError(
                    "--path: cannot create \(PluginHost.escaped(prefix)): \(String(cString: strerror(errno)))")
            }
        }
    }

    private func isFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    private func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ValidationError("cannot create \(PluginHost.escaped(path)): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ValidationError("cannot write \(PluginHost.escaped(path)): \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// `my-like_plugin` → `MyLikePlugin`.
    static func moduleName(_ name: String) -> String {
        name.split(whereSeparator: { $0 == "-" || $0 == "_" }).map { $0.prefix(1).uppercased() + $0.dropFirst() }
            .joined()
    }

    /// The package's files, relative path and text: Plugins/Template (``templateFiles``, generated from that
    /// directory by `.ci/plugin-template`) with its placeholders replaced.
    static func files(name: String, module: String, sdk: String, sdkPackage: String) -> [(String, String)] {
        // Longest first where one placeholder starts another; each is replaced once, left to right, so
        // a value that contains a placeholder (an SDK under ~/PluginTemplate) is written as it is.
        let values = [
            ("../../plugin-sdk", sdk), ("\"plugin-sdk\"", "\"" + sdkPackage + "\""), ("PluginTemplate", module),
            ("plugin-template", name),
        ].map { (Array($0.0.utf8), $0.1) }
        func substituted(_ text: String) -> String {
            let bytes = Array(text.utf8)
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var i = 0
            scan: while i < bytes.count {
                for (placeholder, value) in values where bytes[i...].starts(with: placeholder) {
                    out += value.utf8
                    i += placeholder.count
                    continue scan
                }
                out.append(bytes[i])
                i += 1
            }
            return String(decoding: out, as: UTF8.self)
        }
        return templateFiles.map { (substituted($0.path), substituted($0.text)) }
    }
}
