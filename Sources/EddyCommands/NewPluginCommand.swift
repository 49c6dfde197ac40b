import ArgumentParser
@_spi(Host) import Eddy
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

    func run() throws {
        guard let first = name.unicodeScalars.first, first.isASCII, first.properties.isAlphabetic, name.count <= 64,
            name.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_")
            })
        else {
            throw ValidationError(
                "plugin name '\(PluginHost.escaped(name))': expected a letter, then letters, digits, "
                    + "'-' or '_' (at most 64 characters)")
        }
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
        let module = Self.moduleName(name)
        // The package's targets are MODULE, MODULEEntry and MODULETests: none may shadow a module the
        // package imports or the toolchain provides.
        let taken = [
            "Self", "Type", "Any", "AnyObject", "Protocol", "Int", "String", "Bool", "Double", "Array", "Optional",
            "Crypto", "NIO", "NIOCore", "Logging", "ArgumentParser", "Hummingbird", "Collections", "Algorithms",
            "Eddy", "EddyTesting", "EddyKernelsC", "Testing", "XCTest", "Foundation", "FoundationEssentials",
            "Dispatch", "Glibc", "Musl", "Swift", "SwiftShims", "Synchronization", "Observation", "_Concurrency",
            "RegexBuilder", "Darwin", "PackageDescription", "CoreFoundation",
        ]
        for target in [module, module + "Entry", module + "Tests"]
        where taken.contains(where: { $0.lowercased() == target.lowercased() }) {
            throw ValidationError(
                "plugin name '\(name)' makes a target named \(target), which clashes with a module of the SDK "
                    + "or the toolchain; pick another name")
        }
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

    static func files(name: String, module: String, sdk: String, sdkPackage: String) -> [(String, String)] {
        [
            (
                "Package.swift",
                """
                // swift-tools-version: 6.1
                import PackageDescription

                // An Eddy kernel plugin. The product must be a dynamic library (type: .dynamic): without it
                // `swift build` succeeds and makes no .so. It links the SDK's libEddy.so, never a copy of it.
                let package = Package(
                    name: "\(module)",
                    products: [.library(name: "\(module)", type: .dynamic, targets: ["\(module)Entry"])],
                    dependencies: [.package(path: "\(sdk)")],
                    targets: [
                        // The kernels: also linked into the tests.
                        .target(name: "\(module)", dependencies: [.product(name: "Eddy", package: "\(sdkPackage)")]),
                        // The one exported entry symbol, in a target of its own so that tests can link the kernels.
                        .target(name: "\(module)Entry", dependencies: ["\(module)", .product(name: "Eddy", package: "\(sdkPackage)")]),
                        .testTarget(name: "\(module)Tests",
                                    dependencies: ["\(module)", .product(name: "EddyTesting", package: "\(sdkPackage)")]),
                    ],
                    swiftLanguageModes: [.v6]
                )

                """
            ),
            (
                "Sources/\(module)/\(module).swift",
                """
                import Eddy

                /// `sum(column)` over a sparse column — one value in nearly every row, a few rows patched —
                /// without expanding it: the fill value counts once per row not patched, and only the patches
                /// are added. The engine has no kernel for this key (`eddy kernels` lists none for
                /// `eddy.agg.sum ← eddy.sparse`): without this one it decodes every row, then sums.
                /// `i64` columns only: other types, and a sum that does not fit 64 bits, decline (nil) to the
                /// engine, which then computes the answer (or the overflow error) itself.
                public enum \(module): EddyPlugin {
                    public static let name = "\(name)"
                    public static let version = "0.1.0"

                    public static func register(into registrar: PluginRegistrar) throws {
                        registrar.aggregate(.sum, on: SparseArray.self, name: "sum of fill and patches") { sparse, ctx in
                            guard let patches = try ctx.execute(sparse.values) as? PrimitiveArray,
                                let values = try? patches.values(Int64.self)
                            else { return nil }
                            let fillRows = sparse.count - values.count
                            guard fillRows >= 0 else { return nil }
                            var total: Int64 = 0
                            var summed = 0
                            // The validity once, not per element: each `patches.validity` is a call into
                            // libEddy. Without nulls, a plain loop.
                            let validity = patches.validity
                            if case .allValid = validity {
                                for x in values {
                                    let (next, overflow) = total.addingReportingOverflow(x)
                                    if overflow { return nil }
                                    total = next
                                }
                                summed = values.count
                            } else {
                                for (i, x) in values.enumerated() where validity.isValid(i) {
                                    let (next, overflow) = total.addingReportingOverflow(x)
                                    if overflow { return nil }
                                    total = next
                                    summed += 1
                                }
                            }
                            if let fill = sparse.fill.int64Value, fillRows > 0 {
                                let (product, o1) = fill.multipliedReportingOverflow(by: Int64(fillRows))
                                let (next, o2) = total.addingReportingOverflow(product)
                                if o1 || o2 { return nil }
                                total = next
                                summed += fillRows
                            }
                            // SQL: the sum of no values (all null, or no rows) is null.
                            return summed == 0 ? .null : .int(total)
                        }
                    }
                }

                """
            ),
            (
                "Sources/\(module)Entry/Entry.swift",
                """
                import Eddy
                import \(module)

                // The plugin's one exported symbol: the host asks it for the manifest, then to register.
                @_cdecl("\(PluginABI.entrySymbol)")
                public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
                    pluginEntry(\(module).self, request, argument)
                }

                """
            ),
            (
                "Tests/\(module)Tests/\(module)Tests.swift",
                """
                import EddyTesting
                import Testing
                import \(module)

                @Test func theKernelsAgreeWithDecodeThenCompute() throws {
                    // Inputs generated for every key the plugin registers: empty, one row, all null, sliced,
                    // nested and malformed children; two threads at once; a seed and input index on failure.
                    let report = try PluginConformance.check(\(module).self)
                    // The report says per key what fired and its time against decode-then-compute; a failure
                    // prints it once, as the expectation's message.
                    if report.passed { print(report) }
                    #expect(report.passed, "\\(report)")
                }

                """
            ),
            (
                "README.md",
                """
                # \(name)

                An Eddy kernel plugin: `sum(column)` over sparse `i64` columns (one value in nearly every row,
                a few rows patched), without expanding them. Built against the Eddy SDK at `\(sdk)`.

                The engine has no kernel of its own for this key: `eddy kernels` lists none for
                `eddy.agg.sum ← eddy.sparse`, so without this plugin a sum over such a column decodes every row
                first. `eddy kernels --costs` shows, key by key, where the engine's own kernels are weak.

                What `Sources/\(module)/\(module).swift` registers:

                | key (parent ← child) | kernel | does |
                |---|---|---|
                | `eddy.agg.sum ← eddy.sparse` | `sum of fill and patches` | the fill value × the rows not patched, plus the patches; other types, and a sum past 64 bits, decline to the engine |

                It uses six SDK concepts: `EddyPlugin`, `PluginRegistrar`, `ExecutionCtx`, `SparseArray` (its
                fill, values and count), `PrimitiveArray` (the patches' values and validity) and `ScalarValue`
                (the answer). When you change what it registers, change this table: `swift test` runs the conformance kit on
                every key the code registers, whatever this README says.

                ```sh
                swift test                                            # conformance kit: kernels vs decode-then-compute
                swift build -c release                                  # makes .build/release/lib\(module).so
                install -m 644 .build/release/lib\(module).so /path/to/plugin-dir/  # `eddy serve` loads it on its next scan
                ```

                `eddy plugins --plugin-dir /path/to/plugin-dir` shows whether it loaded (and why not), and
                `eddy eval FILE.eddy --select 'sum(col)' --explain --plugin-dir /path/to/plugin-dir` shows its kernel at
                work on a file `eddy convert` wrote (the engine stores a column sparse when one value fills at least 90%
                of its rows); on a CSV file add `--compression storage`, since a column a query reads once is not
                encoded for a plugin's kernel. `eddy serve` follows the same rule: a CSV request's columns meet your
                kernel when the request says `"compression": "storage"`, an `.eddy` file's always.

                The kernel is in `Sources/\(module)`; the entry symbol in `Sources/\(module)Entry` is one line and
                rarely changes. The SDK's guide ("Writing a kernel plugin") is in the plugin-sdk's DocC catalog.

                """
            ),
            (".gitignore", ".build/\n.swiftpm/\nPackage.resolved\n"),
        ]
    }
}
