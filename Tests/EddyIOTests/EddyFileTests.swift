import DeltaEncodingPlugin
@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyIO
@_spi(Host) import EddyQuery
@_spi(Host) import EddyTestSupport
import EddyTesting
import Foundation
import Synchronization
import Testing

/// A session with the delta plugin registered in-process (its kernels, compressor hook and storage).
func sessionWithDelta() throws -> Session {
    let session = Session()
    let registrar = PluginRegistrar(owner: .plugin(DeltaPlugin.name, version: DeltaPlugin.version))
    try DeltaPlugin.register(into: registrar)
    registrar.seal()
    #expect(registrar.problems.isEmpty, "\(registrar.problems)")
    session.kernels.replace(
        pluginNamed: DeltaPlugin.name, kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
        compressorHooks: registrar.compressorHooks, encodings: registrar.encodings, storages: registrar.storages)
    return session
}

/// Writes `columns` (one chunk each element of `chunks`) to `path`.
func writeEddyFile(
    _ path: String, schema: Schema, chunks: [[any ArrayNode]], session: Session
) throws {
    let writer = try EddyFileWriter(path: path, schema: schema, snapshot: session.kernels.snapshot)
    let ctx = session.makeContext()
    for columns in chunks {
        let stats = try columns.map { try EddyConvert.statistics(ctx.execute($0), ctx: ctx) }
        try writer.append(columns: columns, stats: stats, rows: columns.first?.count ?? 0)
    }
    try writer.finish()
}

/// Whether a tree holds an encoding the format does not store (the lazy ones).
func storable(_ node: any ArrayNode) -> Bool {
    EncodingStorage.builtin[node.encoding.name] != nil && node.children.allSatisfy(storable)
}

func encodings(of node: any ArrayNode) -> Set<String> {
    node.children.reduce(into: [node.encoding.name]) { $0.formUnion(encodings(of: $1)) }
}

@Suite struct EddyFileTests {
    @Test func crc32cMatchesThePublishedCheckValueWithAndWithoutTheCPUInstruction() {
        let check = Array("123456789".utf8)
        #expect(EddyFileFormat.crc32c(check) == 0xE306_9283)
        #expect(EddyFileFormat.crc32cPortable(check) == 0xE306_9283)
        #expect(EddyFileFormat.crc32c([]) == 0)
        var g = ArrayGenerator(seed: 7)
        for n in [1, 7, 8, 9, 63, 64, 65, 1000, 4099] {
            let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: g.next()) }
            #expect(EddyFileFormat.crc32c(bytes) == EddyFileFormat.crc32cPortable(bytes), "length \(n)")
            // Unaligned starts.
            let tail = Array(bytes.dropFirst(3))
            #expect(EddyFileFormat.crc32c(tail) == EddyFileFormat.crc32cPortable(tail))
        }
    }

    @Test func everyBuiltinEncodingRoundTripsThroughAFileAgainstTheInMemoryTree() throws {
        let session = Session()
        let scratch = ScratchDirectory()
        let path = scratch.path + "/round.eddy"
        var g = ArrayGenerator(seed: 12)
        var covered: Set<String> = []
        var files = 0
        // Constants of every kind of value (the generator seldom makes them), then random trees.
        let constants: [any ArrayNode] = [
            ConstantArray(.int64(-5), count: 10), ConstantArray(.null(.utf8(.nullable)), count: 3),
            ConstantArray(.utf8("日本 ,\"x"), count: 4),
            ConstantArray(Scalar(.float(-0.0), .primitive(.float64, .nonNullable)), count: 2),
            ConstantArray(Scalar(.uint(UInt64.max), .primitive(.uint64, .nonNullable)), count: 1),
            ConstantArray(.bool(true), count: 0),
            try IntStringArray(
                prefix: Array("T".utf8), suffix: [], width: 5,
                numbers: PrimitiveArray([UInt64(42), 0, 99_999] as [UInt64]), nullability: .nonNullable),
            try IntStringArray(
                prefix: Array("note ".utf8), suffix: Array("/A".utf8), width: 0,
                numbers: PrimitiveArray([UInt64(7), nil, 1_234_567] as [UInt64?]),
                nullability: .nullable),
            ConstantArray(Scalar(.binary([0, 255]), .binary(.nonNullable)), count: 2),
        ]
        for round in 0..<(300 + constants.count) {
            let encoded: any ArrayNode
            if round < constants.count {
                encoded = constants[round]
            } else {
                let column = try g.column(g.pick(ArrayGenerator.dtypes), count: g.count(max: 200))
                encoded = try g.encode(column, depth: 3)
            }
            let dtype = encoded.dtype
            guard storable(encoded) else { continue }
            let second = try g.encode(try g.column(dtype, count: g.count(max: 200)), depth: 2)
            let chunks: [[any ArrayNode]] =
                storable(second) && second.dtype == encoded.dtype ? [[encoded], [second]] : [[encoded]]
            try writeEddyFile(
                path, schema: Schema([StructField("c", encoded.dtype)]), chunks: chunks, session: session)
            let file = try EddyFile(path: path, snapshot: session.kernels.snapshot)
            #expect(file.footer.chunks.count == chunks.count)
            for (k, chunk) in chunks.enumerated() {
                let read = try file.column(chunk: k, column: 0)
                #expect(
                    read.treeDescription() == chunk[0].treeDescription(), "round \(round): tree changed")
                try expectSameValues(read, chunk[0], "round \(round), chunk \(k)")
                // Decoding the read tree gives what decoding the written one gives.
                let (fast, slow) = try executeBothWays(read, session: session)
                try expectSameValues(fast, try session.makeContext().execute(chunk[0]), "round \(round) decoded")
                try expectSameValues(slow, fast, "round \(round) kernels vs none")
                covered.formUnion(encodings(of: chunk[0]))
            }
            files += 1
        }
        #expect(files > 150)
        let all: Set<String> = [
            "eddy.primitive", "eddy.bool", "eddy.varbin", "eddy.null", "eddy.struct", "eddy.constant", "eddy.dict",
            "eddy.runend", "eddy.for", "eddy.bitpacked", "eddy.chunked", "eddy.sparse", "eddy.intstring",
        ]
        #expect(all.isSubset(of: covered), "not covered: \(all.subtracting(covered))")
        #expect(Set(EncodingStorage.builtin.keys) == all)
    }

    @Test func aPluginEncodingRoundTripsAndItsPluginIsRecorded() throws {
        let session = try sessionWithDelta()
        let scratch = ScratchDirectory()
        let path = scratch.path + "/delta.eddy"
        var raw: [Int64] = []
        for i in 0..<500 {
            let bump: Int64 = i % 7 == 0 ? 1 : 0
            raw.append(1_000_000 + Int64(i) * 3 + bump)
        }
        let ids = PrimitiveArray(raw)
        let compressor = Compressor(hooks: session.kernels.snapshot.compressorHooks, goal: .storage)
        let encoded = try compressor.compress(ids)
        #expect(encoded.encoding.name == "ext.delta", "\(encoded.treeDescription())")
        try writeEddyFile(
            path, schema: Schema([StructField("id", .primitive(.int64, .nonNullable))]), chunks: [[encoded]],
            session: session)
        let file = try EddyFile(path: path, snapshot: session.kernels.snapshot)
        let stored = try #require(file.footer.encodings.first { $0.name == "ext.delta" })
        #expect(stored.pluginName == "delta" && stored.pluginVersion == DeltaPlugin.version)
        #expect(stored.metadataVersion == 1)
        let read = try file.column(chunk: 0, column: 0)
        #expect(read.treeDescription() == encoded.treeDescription())
        try expectSameValues(read, ids)
        // Its kernels still apply to what was read (binary search on the non-decreasing flag).
        let trace = ExecutionTrace()
        let mask = try session.makeContext(trace: trace).execute(
            ScalarFnArray(CompareFunction(.lt), [read, ConstantArray(.int64(1_000_300), count: 500)]))
        #expect(try (mask as? BoolArray)?.bits.trueCount == 100)
        #expect(trace.events.contains { $0.name == "compare by binary search over sorted deltas" })

        // Without the plugin the file is refused before any data is read, naming encoding and plugin.
        #expect {
            _ = try EddyFile(path: path, snapshot: Session().kernels.snapshot)
        } throws: { error in
            let text = "\(error)"
            return text.contains("ext.delta") && text.contains("plugin delta 1.0.0") && text.contains("not loaded")
        }
        // Inspection still opens it, listing what is missing.
        let inspected = try EddyFile(path: path, snapshot: Session().kernels.snapshot, requireEncodings: false)
        #expect(inspected.missing.map(\.name) == ["ext.delta"])
        #expect(throws: (any Error).self) { _ = try inspected.column(chunk: 0, column: 0) }
    }

    @Test func aHookWhoseEncodingCannotBeStoredIsPassedOverWithAWarning() throws {
        // A delta plugin built before encodings could be stored: its hook proposes ext.delta, no storage.
        let session = Session()
        let registrar = PluginRegistrar(owner: .plugin("delta", version: "0.9.0"))
        try DeltaPlugin.register(into: registrar)
        session.kernels.replace(
            pluginNamed: "delta", kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
            compressorHooks: registrar.compressorHooks, encodings: registrar.encodings)
        let snapshot = session.kernels.snapshot
        let ids = PrimitiveArray((0..<1000).map { Int64(5_000 + $0) })
        #expect(try Compressor(hooks: snapshot.compressorHooks).compress(ids).encoding.name == "ext.delta")
        let warnings = Mutex<[String]>([])
        let hooks = EddyConvert.storableHooks(snapshot) { w in warnings.withLock { $0.append(w) } }
        let compressor = Compressor(hooks: hooks)
        let a = try compressor.compress(ids)
        let b = try compressor.compress(ids)
        #expect(a.encoding.name != "ext.delta" && b.encoding.name != "ext.delta", "\(a.treeDescription())")
        #expect(warnings.withLock { $0 }.count == 1)
        #expect(
            warnings.withLock { $0 }.first?.contains("proposed ext.delta, which no loaded plugin can store") == true)
        let scratch = ScratchDirectory()
        try writeEddyFile(
            scratch.path + "/old.eddy", schema: Schema([StructField("id", .primitive(.int64, .nonNullable))]),
            chunks: [[a]], session: session)
        try expectSameValues(
            try EddyFile(path: scratch.path + "/old.eddy", snapshot: Session().kernels.snapshot).column(
                chunk: 0, column: 0),
            ids)
    }

    @Test func zoneMapsSkipChunksAndChangeNoResult() throws {
        let session = Session()
        let scratch = ScratchDirectory()
        var text = "id,group,score,name\n"
        for i in 0..<2000 {
            let score = i % 13 == 0 ? "" : String(Double(i % 101) / 2)
            text += "\(i),\(i / 250),\(score),\(["ant", "bee", "cat", "dog"][i / 500])\n"
        }
        let csv = scratch.write("z.csv", text)
        let path = scratch.path + "/z.eddy"
        let reader = try CSVReader(path: csv, batchRows: 100)
        let writer = try EddyFileWriter(path: path, schema: reader.schema, snapshot: session.kernels.snapshot)
        _ = try EddyConvert.run(
            reader: reader, writer: writer, compressor: Compressor(goal: .storage), session: session, threads: 2)
        func run(_ whereText: String, zoneMaps: Bool) throws -> (String, Int) {
            let file = try EddyFile(path: path, snapshot: session.kernels.snapshot)
            let r = EddyTableReader(file: file)
            let e = try Evaluation(
                reader: r, whereText: whereText, selectText: "id, score, name", context: session.makeContext(),
                zoneMaps: zoneMaps)
            e.threads = 2
            var out = ""
            try e.run(into: ResultWriter(format: .csv, names: e.names) { out += $0 })
            return (out, r.chunksSkipped)
        }
        let cases: [(String, Bool)] = [
            ("id < 150", true), ("id >= 1950", true), ("id = 777", true), ("150 > id", true),
            ("group = 3 and score > 10", true), ("name = 'cat'", true), ("name > 'bee'", true),
            ("name < 'ant'", true), ("score is null", false), ("id != 5", false), ("id < 10 or id > 1990", true),
            ("not (id < 100)", false), ("score > 1000", true), ("null", true), ("false", true),
            ("id > 100 and id < 50", true), ("score <= 0", true),
        ]
        for (w, skips) in cases {
            let (on, skipped) = try run(w, zoneMaps: true)
            let (off, none) = try run(w, zoneMaps: false)
            #expect(on == off, "\(w): zone maps changed the result")
            #expect(none == 0)
            #expect((skipped > 0) == skips, "\(w): skipped \(skipped) chunks")
            // And the same as evaluating the CSV.
            let e = try Evaluation(
                reader: try CSVReader(path: csv), whereText: w, selectText: "id, score, name",
                context: session.makeContext())
            var expected = ""
            try e.run(into: ResultWriter(format: .csv, names: e.names) { expected += $0 })
            #expect(on == expected, "\(w): differs from the CSV")
        }
    }

    /// A file committed by an earlier build must stay readable: the format is a promise.
    @Test func aFileWrittenByAnEarlierBuildIsReadTheSame() throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/eddy/trips-v1.eddy").path
        let r = try Eddy.run(["eval", fixture, "--select", "count(*), sum(trip_id), min(city), max(fare), count(tip)"])
        #expect(r.status == 0, "\(r.stderr)")
        let cells = r.stdout.split(separator: "\n")[2].split(separator: "│").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        #expect(cells == ["600", "60179700", "Lille", "70.3", "469"], "\(r.stdout)")
        // count(*) alone is the footer's row counts: no chunk is read.
        let count = try Eddy.run([
            "eval", fixture, "--select", "count(*), count(*) as n", "--format", "csv", "--explain",
        ])
        #expect(count.status == 0 && count.stdout == "count(*),n\n600,600\n", "\(count.stdout)\(count.stderr)")
        #expect(
            count.stderr.contains("== chunks: 0 read") && count.stderr.contains("no chunk touched"), "\(count.stderr)")
        let rows = try Eddy.run([
            "eval", fixture, "--where", "city = 'Lyon' and fare > 30", "--select", "trip_id, fare", "--format", "csv",
        ])
        #expect(rows.status == 0, "\(rows.stderr)")
        #expect(rows.stdout == Self.fixtureLyonRows, "\(rows.stdout)")
        let inspect = try Eddy.run(["inspect", fixture])
        #expect(inspect.status == 0 && inspect.stdout.contains("600 rows, 8 columns, 3 chunks"), "\(inspect.stdout)")
    }

    static let fixtureLyonRows = """
        trip_id,fare
        100041,32.46
        100044,35.39
        100123,46.97
        100211,46.46
        100262,33.75
        100288,38.37
        100305,34.02
        100352,32.49
        100367,47.08
        100380,47.52
        100456,30.26
        100536,49.57
        100543,33.0
        100558,31.59
        100596,44.93

        """
}
