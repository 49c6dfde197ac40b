import EddyEval
@_spi(Host) import EddyHost
import EddyHostTestSupport
import Foundation
import Testing

/// A one-shot `eddy eval` maps only the plugin builds whose recorded registrations can meet the query
/// (`PluginDemand`, `PluginUses`): the first run of a build maps it and records what it registered.
@Suite struct PluginDemandTests {
    /// A 4,000-row CSV of carriers and delays, the two example plugins, an empty plugin directory and a
    /// private copy directory of its own.
    static func carriers() throws -> (
        dir: ScratchDirectory, csv: String, plugins: ScratchDirectory, empty: ScratchDirectory,
        shadow: ScratchDirectory
    ) {
        let dir = ScratchDirectory()
        var text = "id,carrier,delay\n"
        for i in 0..<4000 { text += "\(i),\(["AF", "BA", "LH", "KL"][i % 4]),\(i % 97)\n" }
        let csv = dir.write("t.csv", text)
        return (dir, csv, try dir.plugins(), ScratchDirectory(), ScratchDirectory())
    }

    @Test func theOperationsOfAQueryAreReadFromItsExpression() throws {
        let like = try #require(PluginDemand.operations(whereText: "origin like 'L%'", selectText: "max(a), mean(b)"))
        #expect(Set(like.keys) == ["eddy.like", "eddy.agg.max", "eddy.agg.mean", "eddy.agg.sum", "eddy.agg.count"])
        #expect(like["eddy.like"] == [.column("origin")] && like["eddy.agg.max"] == [.column("a")])
        let mixed = try #require(
            PluginDemand.operations(
                whereText: "not (a = 1 or b is not null) and -c < 2", selectText: "count(*), sum(a + b)"))
        #expect(
            Set(mixed.keys).isSuperset(of: [
                "eddy.compare", "eddy.or", "eddy.and", "eddy.not", "eddy.is_null", "eddy.negate", "eddy.agg.count_all",
                "eddy.agg.sum", "eddy.arithmetic",
            ]))
        #expect(mixed["eddy.compare"] == [.column("a"), .constant, .operation("eddy.negate")])
        #expect(mixed["eddy.agg.sum"] == [.operation("eddy.arithmetic")])
        #expect(mixed["eddy.not"]?.contains(.operation("eddy.is_null")) == true)
        // Unknown: every build may be needed.
        #expect(PluginDemand.operations(whereText: "a = ", selectText: nil) == nil)
        #expect(PluginDemand.operations(whereText: nil, selectText: "frobnicate(a)") == nil)
        #expect(PluginDemand.operations(whereText: "frobnicate(a) > 1", selectText: "count(*)") == nil)
        // Deep expressions (up to the parser's 200 levels) are walked without recursion.
        let deep = String(repeating: "- ", count: 150) + "a"
        #expect(PluginDemand.operations(whereText: nil, selectText: "sum(\(deep))")?["eddy.negate"] != nil)
    }

    @Test func aBuildIsChosenWhenAKeyOrAHookMeetsTheQuery() throws {
        let compareOnDict = PluginUses(keys: ["eddy.compare|eddy.dict"], hookPurposes: 0, storedEncodings: [])
        let deltaLike = PluginUses(
            keys: ["eddy.compare|ext.delta", "eddy.agg.min|ext.delta"], hookPurposes: 2, storedEncodings: ["ext.delta"])
        let onDelta = PluginUses(keys: ["eddy.agg.sum|ext.delta"], hookPurposes: 0, storedEncodings: [])
        let recorded = ["a": compareOnDict, "b": deltaLike, "c": onDelta]
        let ops: [String: Set<PluginDemand.Operand>] = [
            "eddy.compare": [.column("carrier"), .constant], "eddy.agg.sum": [.column("delay")],
        ]
        // A stored file with a dictionary column: the compare kernel can meet it; the delta ones cannot.
        let file = PluginDemand(
            operations: ops, columnEncodings: ["carrier": ["eddy.dict", "eddy.varbin"], "delay": ["eddy.for"]],
            encodings: ["eddy.dict", "eddy.varbin", "eddy.for"], hookPurposes: 0)
        #expect(file.select(recorded) == ["a"])
        // The comparison on a column that is not a dictionary there: nothing.
        let numeric = PluginDemand(
            operations: ["eddy.compare": [.column("delay"), .constant]],
            columnEncodings: ["carrier": ["eddy.dict", "eddy.varbin"], "delay": ["eddy.for"]],
            encodings: ["eddy.dict", "eddy.varbin", "eddy.for"], hookPurposes: 0)
        #expect(numeric.select(recorded).isEmpty)
        // No comparison in the query: nothing.
        #expect(
            PluginDemand(operations: ["eddy.like": [.column("carrier")]], encodings: ["eddy.dict"], hookPurposes: 0)
                .select(recorded).isEmpty)
        // An operation the executor pushes into its operand keeps the operand's encoding: `sum(run * 2)`
        // can run a sum kernel on run-end values; `mean` is a sum and a count.
        let onRuns = ["r": PluginUses(keys: ["eddy.agg.sum|eddy.runend"], hookPurposes: 0, storedEncodings: [])]
        for select in ["sum(run * 2)", "mean(run)", "avg(-run)", "sum(cast(run as f64))"] {
            let ops = try #require(PluginDemand.operations(whereText: nil, selectText: select), "\(select)")
            let demand = PluginDemand(
                operations: ops, columnEncodings: ["run": ["eddy.runend", "eddy.primitive"]],
                encodings: ["eddy.runend", "eddy.primitive"], hookPurposes: 0)
            #expect(demand.select(onRuns) == ["r"], "\(select)")
        }
        // Compressed for storage: the delta hook is asked, so its encoding may be anywhere, and the
        // build with a kernel on it is chosen too.
        let storage = PluginDemand(operations: ops, encodings: ["eddy.primitive"], hookPurposes: 2)
        #expect(storage.select(recorded) == ["b", "c"])
    }

    /// The cost rule: below `minKernelRows` a build is chosen only for a hook the query asks, never for its
    /// kernels alone; at the threshold its kernels count again.
    @Test func onAnInputTooSmallForKernelsToPayOnlyAnAskedHookChoosesABuild() {
        let compareOnDict = PluginUses(keys: ["eddy.compare|eddy.dict"], hookPurposes: 0, storedEncodings: [])
        let deltaLike = PluginUses(
            keys: ["eddy.compare|ext.delta"], hookPurposes: 2, storedEncodings: ["ext.delta"])
        let recorded = ["a": compareOnDict, "b": deltaLike]
        let ops: [String: Set<PluginDemand.Operand>] = ["eddy.compare": [.column("carrier"), .constant]]
        func demand(rows: Int, purposes: UInt32) -> PluginDemand {
            PluginDemand(
                operations: ops, encodings: ["eddy.dict", "eddy.varbin"], hookPurposes: purposes, rows: rows,
                minKernelRows: 1000)
        }
        #expect(demand(rows: 999, purposes: 0).kernelsDoNotPay)
        #expect(demand(rows: 999, purposes: 0).select(recorded).isEmpty)
        #expect(demand(rows: 1000, purposes: 0).select(recorded) == ["a"])
        // The storage hook is asked: its build maps whatever the size; the dictionary kernel still waits.
        #expect(demand(rows: 999, purposes: 2).select(recorded) == ["b"])
        #expect(demand(rows: 1000, purposes: 2).select(recorded) == ["a", "b"])
        // Unknown rows (a size that could not be read) never hold a kernel back.
        #expect(!demand(rows: .max, purposes: 0).kernelsDoNotPay)
        #expect(PluginDemand.estimatedRows(bytes: 80) == 10 && PluginDemand.estimatedRows(bytes: -1) == 0)
    }

    /// Through the real binary: a one-shot on a small file leaves a kernel-only build unmapped and says
    /// why; an `.eddy` file's footer rows meet `--plugin-min-rows` exactly at the threshold; an asked
    /// hook maps its build whatever the size; the answers are the same throughout.
    @Test func aOneShotMapsABuildForItsKernelsOnlyWhenTheInputPaysForIt() throws {
        let (dir, csv, plugins, empty, shadow) = try Self.carriers()
        let env = ["EDDY_SHADOW_DIR": shadow.path + "/copies"]
        func eval(_ file: String, _ extra: [String], _ dir: ScratchDirectory) throws -> Eddy.Result {
            try Eddy.run(
                [
                    "eval", file, "--where", "carrier = 'KL'", "--select", "count(*), sum(delay)", "--plugin-dir",
                    dir.path,
                ]
                    + extra, environment: env)
        }
        let stored = dir.path + "/t.eddy"
        let convert = try Eddy.run(
            ["convert", csv, stored, "--plugin-dir", empty.path], environment: env)
        #expect(convert.status == 0, "\(convert.stderr)")
        let expected = try eval(csv, [], empty).stdout
        #expect(expected.contains("1000"), "\(expected)")
        // The first sight of the builds probes and verifies them whatever the size.
        let first = try eval(csv, ["--explain"], plugins)
        #expect(first.status == 0 && first.stdout == expected, "\(first.stderr)")
        let verdicts = try String(contentsOfFile: shadow.path + "/copies/probed.tsv", encoding: .utf8)
        #expect(verdicts.contains("packed-dict-compare") && verdicts.contains("delta"), "\(verdicts)")
        // The CSV file's ~70 bytes are far below the default: neither build mapped, and --explain says why.
        let small = try eval(csv, ["--explain"], plugins)
        #expect(small.status == 0 && small.stdout == expected, "\(small.stderr)")
        #expect(small.stderr.contains("plugin set: builtin only"), "\(small.stderr)")
        #expect(
            small.stderr.contains(
                "rows (by its size), fewer than --plugin-min-rows 4000000, so no build is mapped for its kernels alone"),
            "\(small.stderr)")
        // An `.eddy` file's rows are its footer's: 4000 maps the dictionary kernel at 4000, not at 4001.
        for (threshold, mapped) in [("4001", false), ("4000", true), ("0", true)] {
            let r = try eval(stored, ["--explain", "--plugin-min-rows", threshold], plugins)
            #expect(r.status == 0 && r.stdout == expected, "\(threshold): \(r.stderr)")
            #expect(r.stderr.contains("packed-dict-compare@1.0.0#") == mapped, "\(threshold): \(r.stderr)")
            #expect(
                r.stderr.contains("[plugin packed-dict-compare@1.0.0]") == mapped, "\(threshold): \(r.stderr)")
            if !mapped {
                // An `.eddy` file asks no hook: no build could take part, so the directory is not read.
                #expect(r.stderr.contains("the plugin directory was not read"), "\(r.stderr)")
                #expect(
                    r.stderr.contains("the input holds 4000 rows, fewer than --plugin-min-rows 4001"), "\(r.stderr)")
            }
        }
        // `--compression storage` asks the delta build's storage hook: it maps on the small file; the
        // dictionary kernel's build still waits for rows.
        let hooked = try eval(csv, ["--explain", "--compression", "storage"], plugins)
        #expect(hooked.status == 0 && hooked.stdout == expected, "\(hooked.stderr)")
        #expect(
            hooked.stderr.contains("delta@1.0.0#") && !hooked.stderr.contains("packed-dict-compare@1.0.0#"),
            "\(hooked.stderr)")
        // A count that is not a number, or below 0, is the user's mistake, named.
        for bad in ["-1", "many"] {
            let r = try eval(csv, ["--plugin-min-rows", bad], plugins)
            #expect(r.status != 0 && r.stdout.isEmpty && r.stderr.contains("plugin-min-rows"), "\(bad): \(r.stderr)")
        }
    }

    /// Two builds of one plugin name: the first file's loads and the second is refused, whatever hints
    /// this host keeps (leaving the first out unread would let the second load).
    @Test func twoBuildsOfOneNameAreReadWhateverTheQuery() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("t.csv", "x,y\n0,a\n1,b\n2,c\n")
        let plugins = ScratchDirectory()
        try plugins.copy(PluginFiles.built("EddyFixtureCrashingKernelFixed"), as: "a.so")
        try plugins.copy(PluginFiles.built("EddyFixtureCrashingKernel"), as: "b.so")
        let shadow = ScratchDirectory()
        let env = ["EDDY_SHADOW_DIR": shadow.path + "/copies"]
        var st = stat()
        #expect(stat(plugins.path + "/b.so", &st) == 0)
        while Double(time(nil)) < Double(st.st_ctim.tv_sec) + 2.5 { usleep(100_000) }
        for _ in 0..<2 {
            let r = try Eddy.run(
                ["eval", csv, "--where", "y like 'a%'", "--select", "x", "--plugin-dir", plugins.path, "--explain"],
                environment: env)
            #expect(r.status == 0 && r.stdout.contains("0"), "\(r.stderr)")
            #expect(r.stderr.contains("already loaded from") && !r.stderr.contains("(its file not read"), "\(r.stderr)")
        }
    }

    @Test func aOneShotMapsOnlyTheBuildsItsQueryCanUse() throws {
        let (scratch, csv, plugins, empty, shadow) = try Self.carriers()
        defer { withExtendedLifetime(scratch) {} }
        let env = ["EDDY_SHADOW_DIR": shadow.path + "/copies"]
        func eval(_ file: String, _ whereText: String, _ select: String, _ dir: ScratchDirectory) throws -> Eddy.Result
        {
            try Eddy.run(
                [
                    "eval", file, "--where", whereText, "--select", select, "--plugin-dir", dir.path, "--explain",
                    "--plugin-min-rows", "0",
                ], environment: env)
        }
        // The probe reports what each build registered; the verdict keeps it.
        let first = try eval(csv, "delay > 50", "count(*)", plugins)
        let firstWithout = try eval(csv, "delay > 50", "count(*)", empty)
        #expect(first.status == 0 && first.stdout == firstWithout.stdout, "\(first.stderr)")
        let verdicts = try String(contentsOfFile: shadow.path + "/copies/probed.tsv", encoding: .utf8)
        #expect(verdicts.contains("eddy.compare|eddy.dict;0;") && verdicts.contains(";2;ext.delta"), "\(verdicts)")
        // A `like` maps neither, a comparison the dictionary one (a CSV column may become a dictionary);
        // answers as without plugins.
        for (whereText, loaded) in [("carrier like 'A%'", [String]()), ("carrier = 'KL'", ["packed-dict-compare"])] {
            let with = try eval(csv, whereText, "count(*), sum(delay)", plugins)
            let without = try eval(csv, whereText, "count(*), sum(delay)", empty)
            #expect(with.status == 0 && with.stdout == without.stdout, "\(with.stderr)")
            for name in ["delta", "packed-dict-compare"] {
                #expect(
                    with.stderr.contains("plugin set: ")
                        && with.stderr.contains("\(name)@1.0.0#") == loaded.contains(name),
                    "\(whereText): \(with.stderr)")
            }
            #expect(loaded.count == 2 || with.stderr.contains("== plugins not loaded for this query"), "\(with.stderr)")
        }
        // Under the default compression a CSV column only aggregated stays plain: a comparison kernel on
        // dictionaries cannot meet `max(delay)`, and a filter on `carrier` makes it a dictionary.
        let plainColumn = try eval(csv, "delay > 3", "max(delay)", plugins)
        #expect(plainColumn.stderr.contains("== plugins not loaded for this query"), "\(plainColumn.stderr)")
        // Once a file's digest is remembered by its identity (its status settled 2 s before it was hashed),
        // a build that cannot take part is left out without reading its file; one that can is read and
        // checked as before.
        var st = stat()
        #expect(stat(plugins.path + "/packed.so", &st) == 0)
        while Double(time(nil)) < Double(st.st_ctim.tv_sec) + 2.5 { usleep(100_000) }
        _ = try eval(csv, "carrier = 'KL'", "count(*)", plugins)
        let unread = try eval(csv, "carrier like 'A%'", "count(*), sum(delay)", plugins)
        let unreadWithout = try eval(csv, "carrier like 'A%'", "count(*), sum(delay)", empty)
        #expect(unread.status == 0 && unread.stdout == unreadWithout.stdout, "\(unread.stderr)")
        #expect(
            unread.stderr.contains("delta@1.0.0 (its file not read: known by its identity)")
                && unread.stderr.contains("packed-dict-compare@1.0.0 (its file not read"), "\(unread.stderr)")
        let read = try eval(csv, "carrier = 'KL'", "count(*), sum(delay)", plugins)
        #expect(
            read.stderr.contains("packed-dict-compare@1.0.0#") && !read.stderr.contains("packed-dict-compare@1.0.0 ("),
            "\(read.stderr)")
        // Every file is read when the directory fails its trust checks (each gets its refusal).
        #expect(chmod(plugins.path, 0o777) == 0)
        let open = try eval(csv, "carrier like 'A%'", "count(*), sum(delay)", plugins)
        #expect(chmod(plugins.path, 0o700) == 0)
        #expect(
            open.stderr.contains("writable by others") && !open.stderr.contains("(its file not read"), "\(open.stderr)")
        // A build that says it registered nothing only loses its own speed: the answer is the same.
        try verdicts.replacingOccurrences(of: "eddy.compare|eddy.dict;0;", with: ";0;").write(
            toFile: shadow.path + "/copies/probed.tsv", atomically: false, encoding: .utf8)
        let lied = try eval(csv, "carrier = 'KL'", "count(*), sum(delay)", plugins)
        let plain = try eval(csv, "carrier = 'KL'", "count(*), sum(delay)", empty)
        #expect(lied.status == 0 && lied.stdout == plain.stdout, "\(lied.stderr)")
        #expect(lied.stderr.contains("not loaded for this query") && lied.stderr.contains("packed-dict-compare@1.0.0"))
    }
}
