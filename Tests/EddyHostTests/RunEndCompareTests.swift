import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `RunEndCompare` fixture — the DocC article's six-concept kernel — loaded by the real `eddy`
/// binary: its answers for `x op constant` over run-end columns equal the engine's own on inputs with
/// nulls and runs that end on, just before and just after 64-row word edges.
@Suite(.serialized) struct RunEndCompareTests {
    /// The fixture, built once per run with `swiftc -O` against the SDK (DESIGN.md §7).
    static let plugin = Result { try build(["-O"], as: "release") }

    /// Builds the fixture with `flags` (`-O`, `-Onone -g` …) into a temporary `.so` named by `tag`.
    static func build(_ flags: [String], as tag: String) throws -> String {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/RunEndCompare/RunEndComparePlugin.swift").path
        let out = NSTemporaryDirectory() + "eddy-run-end-compare-\(tag)-\(getpid()).so"
        let build = PluginFiles.buildDirectory
        try compile(
            ["swiftc"] + flags + [
                "-emit-library", "-module-name", "RunEndCompare", source, "-I", build + "/Modules", "-L", build,
                "-lEddy", "-o", out,
            ], naming: "RunEndCompare")
        return out
    }

    /// Run lengths around word edges (64, 63, 65, 1, 128, 127, 129 …), cycling through `values`
    /// (`nil` is an empty field: a run of nulls).
    static func csv(lengths: [Int], values: [Int?]) -> String {
        // A row id beside x: a line holding only an empty field would be a blank line, not a null.
        var text = "id,x\n"
        var id = 0
        for (k, n) in lengths.enumerated() {
            let field = values[k % values.count].map(String.init) ?? ""
            for _ in 0..<n {
                text += "\(id),\(field)\n"
                id += 1
            }
        }
        return text
    }

    static let inputs: [(name: String, text: String)] = [
        ("word-edges", csv(lengths: [64, 63, 1, 65, 128, 127, 129, 1, 1, 64, 200, 3, 61], values: [1, 5, 3, 9, 2])),
        (
            "with-nulls",
            csv(lengths: [70, 64, 58, 6, 64, 1, 63, 256, 2, 62], values: [4, nil, 7, 3, nil, 5, 1])
        ),
        ("one-long-run-then-short", csv(lengths: [1000, 1, 2, 3, 500, 64], values: [6, 2, nil, 8])),
    ]
    static let predicates = ["x > 4", "x = 3", "x != 3", "x <= 2", "5 < x", "x >= 9", "x < 100"]

    /// Batches of 700 rows: runs also cross batch edges, and a batch can start inside a run.
    func run(_ file: String, _ args: [String], plugins: String?, batchRows: Int = 700) throws -> Eddy.Result {
        // The kernel on these small files: mapped whatever their size.
        let dir = plugins.map { ["--plugin-dir", $0, "--plugin-min-rows", "0"] } ?? []
        return try Eddy.run(["eval", file] + args + ["--batch-rows", String(batchRows), "--format", "csv"] + dir)
    }

    @Test(arguments: inputs.indices)
    func pluginAnswersEqualTheBuiltInPathAndTheKernelFires(input: Int) throws {
        let plugins = ScratchDirectory()
        try plugins.copy(try Self.plugin.get(), as: "run-end-compare.so")
        let dir = ScratchDirectory()
        let text = Self.inputs[input].text
        let file = dir.write("runs.csv", text)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count - 1
        for predicate in Self.predicates {
            let select = ["--select", "id, x, \(predicate) as answer"]
            let decoded = try run(file, select + ["--compression", "query"], plugins: nil)
            let builtIn = try run(file, select + ["--compression", "storage"], plugins: nil)
            let plugin = try run(file, select + ["--compression", "storage"], plugins: plugins.path)
            #expect(decoded.status == 0 && builtIn.status == 0 && plugin.status == 0, "\(plugin.stderr)")
            #expect(decoded.stdout.split(separator: "\n").count == lines, "\(decoded.stdout.prefix(200))")
            #expect(plugin.stdout == decoded.stdout, "\(Self.inputs[input].name): \(predicate)")
            #expect(builtIn.stdout == decoded.stdout, "\(Self.inputs[input].name): \(predicate)")

            let count = ["--where", predicate, "--select", "count(*)"]
            let expected = try run(file, count + ["--compression", "query"], plugins: nil)
            let counted = try run(file, count + ["--compression", "storage"], plugins: plugins.path)
            #expect(counted.stdout == expected.stdout, "\(Self.inputs[input].name): count where \(predicate)")
        }
        // One batch, so that the first batch (the one --explain shows) holds many runs.
        let explain = try run(
            file, ["--select", "x > 4 as answer", "--compression", "storage", "--explain"], plugins: plugins.path,
            batchRows: 1 << 20)
        #expect(explain.stderr.contains("eddy.runend"), "\(explain.stderr)")
        #expect(explain.stderr.contains("compare once per run"), "\(explain.stderr)")
    }
}
