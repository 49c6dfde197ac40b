import DeltaEncodingPlugin
@_spi(Host) import Eddy
import EddyHostTestSupport
@_spi(Host) import EddyIO
import EddyTesting
import Foundation
import Testing

/// `.eddy` files as written by someone hostile: mutated real files must give an error that names what
/// failed, never a trap; plugins missing or of the wrong version are named before any data is read.
@Suite struct EddyFileHostileTests {
    /// Real files to mutate: a CSV converted with the storage compressor (with the delta plugin's
    /// encoding), and random columns in every built-in encoding.
    static func seedFiles(_ scratch: ScratchDirectory, session: Session) throws -> [[UInt8]] {
        var text = "id,k,price,name,flag\n"
        for i in 0..<300 {
            let k = i % 17 == 0 ? "" : String((i / 40) * 3 - 5)
            let price = i % 11 == 0 ? "" : String(Double(i % 23) * 1.25)
            text += "\(1000 + i),\(k),\(price),\(["ant", "bee", "cat", "日本"][i % 4]),\(i % 3 == 0)\n"
        }
        let csv = scratch.write("seed.csv", text)
        let first = scratch.path + "/seed1.eddy"
        let reader = try CSVReader(path: csv, batchRows: 100)
        let writer = try EddyFileWriter(path: first, schema: reader.schema, snapshot: session.kernels.snapshot)
        _ = try EddyConvert.run(
            reader: reader, writer: writer,
            compressor: Compressor(hooks: session.kernels.snapshot.compressorHooks, goal: .storage),
            session: session, threads: 1)
        var files = [try [UInt8](Data(contentsOf: URL(fileURLWithPath: first)))]
        var g = ArrayGenerator(seed: 99)
        var columns: [any ArrayNode] = []
        var fields: [StructField] = []
        while columns.count < 6 {
            let dtype = g.pick(ArrayGenerator.dtypes)
            let c = try g.encode(try g.column(dtype, count: 120), depth: 3)
            guard storable(c) else { continue }
            columns.append(c)
            fields.append(StructField("c\(columns.count)", c.dtype))
        }
        let second = scratch.path + "/seed2.eddy"
        try writeEddyFile(second, schema: Schema(fields), chunks: [columns], session: session)
        files.append(try [UInt8](Data(contentsOf: URL(fileURLWithPath: second))))
        return files
    }

    /// The footer's place, from an unmutated file's trailer.
    static func footerRange(_ f: [UInt8]) -> Range<Int> {
        let t = f.count - 32
        func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(f[at + $1]) << (8 * $1) } }
        return u64(t)..<(u64(t) + u64(t + 8))
    }

    static func fixTrailer(_ f: inout [UInt8], footerStart: Int) {
        guard f.count >= 32, footerStart <= f.count - 32 else { return }
        let t = f.count - 32
        let length = t - footerStart
        let crc = EddyFileFormat.crc32c(Array(f[footerStart..<t]))
        for k in 0..<8 { f[t + k] = UInt8(truncatingIfNeeded: footerStart >> (8 * k)) }
        for k in 0..<8 { f[t + 8 + k] = UInt8(truncatingIfNeeded: length >> (8 * k)) }
        for k in 0..<4 { f[t + 16 + k] = UInt8(truncatingIfNeeded: crc >> (8 * k)) }
    }

    static let interesting: [UInt64] = [
        0, 1, 2, 7, 8, 63, 64, 65, 255, 256, 4096, 65_535, 65_536, 1 << 24, (1 << 24) + 1, 1 << 31, (1 << 32) - 1,
        1 << 32, 1 << 62, UInt64(Int64.max), UInt64(Int64.max) + 1, UInt64.max,
    ]

    /// One seeded mutation of a real file.
    static func mutate(_ base: [UInt8], _ g: inout ArrayGenerator) -> (bytes: [UInt8], checksums: Bool) {
        var f = base
        let footer = footerRange(base)
        switch g.int(0...9) {
        case 0:  // bit flips anywhere, checksums on: caught by a checksum or a structural check
            for _ in 0..<g.int(1...8) { f[g.int(0...(f.count - 1))] ^= UInt8(1) << UInt8(g.int(0...7)) }
            return (f, true)
        case 1:  // truncated
            return (Array(f.prefix(g.int(0...(f.count - 1)))), true)
        case 2, 3:  // footer bytes changed, footer checksum fixed: the parser's own checks
            for _ in 0..<g.int(1...6) {
                let at = g.int(footer.lowerBound...(footer.upperBound - 1))
                f[at] = g.chance(0.5) ? g.pick([0, 1, 0x7f, 0x80, 0xfe, 0xff]) : UInt8(truncatingIfNeeded: g.next())
            }
            fixTrailer(&f, footerStart: footer.lowerBound)
            return (f, g.chance(0.5))
        case 4, 5:  // an 8-byte field of the footer set to an extreme count or offset
            let at = g.int(footer.lowerBound...(footer.upperBound - 8))
            var v = g.pick(interesting)
            if g.chance(0.3) { v = UInt64(f.count) &+ UInt64(bitPattern: Int64(g.int(-100...100))) }
            for k in 0..<8 { f[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            fixTrailer(&f, footerStart: footer.lowerBound)
            return (f, false)
        case 6:  // footer bytes inserted or removed (lengths and positions shift), trailer fixed
            let at = g.int(footer.lowerBound...(footer.upperBound - 1))
            if g.chance(0.5) {
                f.insert(contentsOf: (0..<g.int(1...16)).map { _ in UInt8(truncatingIfNeeded: g.next()) }, at: at)
            } else {
                f.removeSubrange(at..<Swift.min(at + g.int(1...16), footer.upperBound))
            }
            fixTrailer(&f, footerStart: footer.lowerBound)
            return (f, false)
        case 7, 8:  // data bytes changed with checksums off: the encodings' checks and the kernels
            for _ in 0..<g.int(1...16) {
                let at = g.int(64...(footer.lowerBound - 1))
                f[at] = g.chance(0.5) ? g.pick([0, 1, 0x7f, 0x80, 0xff]) : UInt8(truncatingIfNeeded: g.next())
            }
            return (f, false)
        default:  // header and trailer fields
            let at = g.chance(0.5) ? g.int(0...15) : g.int((f.count - 32)...(f.count - 1))
            f[at] = UInt8(truncatingIfNeeded: g.next())
            return (f, g.chance(0.5))
        }
    }

    /// Opens a file and evaluates everything in it (decode, sum, min, compare), as a query would.
    static func readAll(_ path: String, session: Session, checksums: Bool) throws {
        let file = try EddyFile(path: path, snapshot: session.kernels.snapshot, verifyChecksums: checksums)
        let ctx = session.makeContext(options: ExecutionOptions(iterationLimit: 100_000))
        for k in file.footer.chunks.indices {
            for j in file.footer.schema.fields.indices {
                let node = try file.column(chunk: k, column: j)
                let canonical = try ctx.execute(node)
                guard canonical.count == node.count else { throw EddyTestError("length changed") }
                if node.dtype.ptype != nil {
                    // Overflow and the like are answers too; a trap is not.
                    _ = try? ctx.execute(AggregateArray(AggregateFunction(.sum), node))
                    _ = try ctx.execute(AggregateArray(AggregateFunction(.max), node))
                    if node.count > 0, let first = try? canonical.scalar(at: 0), !first.isNull {
                        _ = try ctx.execute(
                            ScalarFnArray(CompareFunction(.lt), [node, ConstantArray(first, count: node.count)]))
                    }
                }
            }
        }
    }

    @Test func aHundredThousandMutatedFilesGiveErrorsNeverATrap() throws {
        let session = try sessionWithDelta()
        let scratch = ScratchDirectory()
        let seeds = try Self.seedFiles(scratch, session: session)
        // The unmutated files read completely.
        for name in ["seed1.eddy", "seed2.eddy"] {
            try Self.readAll(scratch.path + "/" + name, session: session, checksums: true)
        }
        let iterations = Int(ProcessInfo.processInfo.environment["EDDY_FUZZ_ITERATIONS"] ?? "") ?? 100_000
        var g = ArrayGenerator(seed: 20_261_126)
        var outcomes: [String: Int] = [:]
        let path = scratch.path + "/mutant.eddy"
        for i in 0..<iterations {
            let base = seeds[i % seeds.count]
            let (bytes, checksums) = Self.mutate(base, &g)
            // A new file each time: the previous mapping may still be alive in no one's hands, but a
            // rename never changes the pages of a mapped inode.
            let tmp = path + ".new"
            FileManager.default.createFile(atPath: tmp, contents: Data(bytes))
            _ = rename(tmp, path)
            do {
                try Self.readAll(path, session: session, checksums: checksums)
                outcomes["read", default: 0] += 1
            } catch let e as IOError {
                // Every error names the file.
                if !"\(e)".contains(path) { Issue.record("iteration \(i): error without the file: \(e)") }
                outcomes["file error", default: 0] += 1
            } catch {
                outcomes["engine error", default: 0] += 1
            }
        }
        print("fuzz: \(iterations) mutated files: \(outcomes.sorted { $0.key < $1.key })")
        #expect(outcomes.values.reduce(0, +) == iterations)
        // The mutations reach past the checksums into the parser and the encodings.
        #expect((outcomes["file error"] ?? 0) > iterations / 4)
        #expect((outcomes["read"] ?? 0) > iterations / 50)
    }

    @Test func missingAndOlderPluginsAreNamedBeforeAnyDataIsRead() throws {
        let scratch = ScratchDirectory()
        let csv = tripsCSV(scratch, rows: 2000)
        let v1 = ScratchDirectory()
        try v1.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let file = scratch.path + "/trips.eddy"
        let c = try Eddy.run(["convert", csv, file, "--plugin-dir", v1.path, "--chunk-rows", "500"])
        #expect(c.status == 0 && c.stdout.contains("2000 rows"), "\(c.stderr)")
        let expected = try Eddy.run(["eval", csv, "--where", "trip_id > 101500", "--select", "count(*), sum(fare)"])
        let ok = try Eddy.run([
            "eval", file, "--plugin-dir", v1.path, "--where", "trip_id > 101500", "--select", "count(*), sum(fare)",
        ])
        #expect(ok.status == 0 && ok.stdout == expected.stdout, "\(ok.stdout) \(ok.stderr)")

        let none = try Eddy.run(["eval", file, "--select", "count(*)"])
        #expect(none.status == 1)
        #expect(
            none.stderr.contains("needs encoding ext.delta, written by plugin delta 1.0.0")
                && none.stderr.contains("not loaded") && none.stderr.contains(file), "\(none.stderr)")
        #expect(none.stdout.isEmpty)

        let v2 = ScratchDirectory()
        try v2.copy(PluginFiles.built("EddyFixtureDeltaV2"), as: "delta.so")
        let newer = try Eddy.run(["eval", file, "--plugin-dir", v2.path, "--select", "count(*)"])
        #expect(newer.status == 1)
        #expect(
            newer.stderr.contains("written by plugin delta 1.0.0 with metadata version 1")
                && newer.stderr.contains("plugin delta 2.0.0 reads versions 2…2"), "\(newer.stderr)")

        let inspect = try Eddy.run(["inspect", file, "--json"])
        #expect(inspect.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any]
        let needed = json?["plugins_needed"] as? [[String: Any]] ?? []
        #expect(needed.count == 1 && needed.first?["plugin"] as? String == "delta")
        #expect(needed.first?["loaded"] as? Bool == false)
        #expect((json?["columns"] as? [[String: Any]])?.count == 4)
    }

    /// From the hostile review of the first version.
    @Test func reviewFindingsStayFixed() throws {
        let scratch = ScratchDirectory()
        // -0.0 and 0.0 are two values (1 / x tells them apart): convert kept only one of them.
        var text = "x\n"
        for i in 0..<300 { text += ["-0.0", "0.0", "1.5"][i % 3] + "\n" }
        let csv = scratch.write("zeros.csv", text)
        let file = scratch.path + "/zeros.eddy"
        #expect(try Eddy.run(["convert", csv, file]).status == 0)
        for select in ["x, 1 / x as inv", "count(*)"] {
            let fromCSV = try Eddy.run(["eval", csv, "--where", "1 / x > 0", "--select", select, "--format", "csv"])
            let fromFile = try Eddy.run(["eval", file, "--where", "1 / x > 0", "--select", select, "--format", "csv"])
            #expect(fromCSV.status == 0 && fromFile.stdout == fromCSV.stdout, "\(fromFile.stdout) vs \(fromCSV.stdout)")
        }
        // A cached file changed in place, its size kept and its modification time set back (cp -p,
        // rsync -t, tar), is opened afresh: its segments are checked again, not served from the cache.
        let cached = scratch.path + "/cached.eddy"
        #expect(try Eddy.run(["convert", csv, cached]).status == 0)
        let snapshot = Session().kernels.snapshot
        let before = try EddyFile(path: cached, snapshot: snapshot)
        _ = try before.column(chunk: 0, column: 0)
        var st = stat()
        #expect(stat(cached, &st) == 0)
        let segment = before.footer.chunks[0].columns[0]
        let fd = open(cached, O_WRONLY)
        var flipped: [UInt8] = [0xA5, 0x5A, 0xA5, 0x5A]
        #expect(pwrite(fd, &flipped, 4, off_t(segment.segmentOffset)) == 4)
        close(fd)
        var times = [st.st_atim, st.st_mtim]
        #expect(utimensat(AT_FDCWD, cached, &times, 0) == 0)
        #expect(throws: IOError.self) { try EddyFile(path: cached, snapshot: snapshot).column(chunk: 0, column: 0) }
        // A reader with a footer budget (the serve supervisor's) refuses a larger footer by name.
        #expect(throws: IOError.self) {
            try EddyFile(path: file, snapshot: Session().kernels.snapshot, maxFooterBytes: 8)
        }
        do {
            _ = try EddyFile(path: file, snapshot: Session().kernels.snapshot, maxFooterBytes: 8)
        } catch let e as IOError {
            #expect(e.description.contains("zeros.eddy") && e.message.contains("more than the 8"), "\(e)")
        }
        #expect(
            try EddyFile(path: file, snapshot: Session().kernels.snapshot, maxFooterBytes: 1 << 20).footer.rows == 300)
        // A directory as the output is refused before anything is read or written.
        let dir = try Eddy.run(["convert", csv, scratch.path])
        #expect(dir.status == 1 && dir.stderr.contains("is a directory"), "\(dir.stderr)")
        let slash = try Eddy.run(["convert", csv, scratch.path + "/new/"])
        #expect(slash.status == 1 && slash.stderr.contains("is a directory"), "\(slash.stderr)")
        // An .eddy file through a pipe is named as such, not parsed as CSV.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Eddy.binary)
        p.arguments = ["eval", "/dev/stdin", "--plugin-dir", emptyPluginDirectory]
        let input = Pipe()
        p.standardInput = input
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        input.fileHandleForWriting.write(try Data(contentsOf: URL(fileURLWithPath: file)))
        try input.fileHandleForWriting.close()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1 && message.contains("this is an .eddy file"), "\(message)")
        // A file named .eddy whose start is damaged is an .eddy error, not a CSV one.
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[0] = 0x41
        FileManager.default.createFile(atPath: scratch.path + "/damaged.eddy", contents: Data(bytes))
        let damaged = try Eddy.run(["eval", scratch.path + "/damaged.eddy"])
        #expect(damaged.status == 1 && damaged.stderr.contains("no EDDYFILE magic at the start"), "\(damaged.stderr)")
        // inspect orders NaN above every number, as max() does.
        let nan = scratch.write("nan.csv", "f\n1.0\nNaN\n2.0\n")
        let nanFile = scratch.path + "/nan.eddy"
        #expect(try Eddy.run(["convert", nan, nanFile, "--chunk-rows", "1"]).status == 0)
        let inspect = try Eddy.run(["inspect", nanFile])
        let max = try Eddy.run(["eval", nanFile, "--select", "max(f)", "--format", "csv"])
        #expect(inspect.stdout.contains("max nan") && max.stdout.contains("nan"), "\(inspect.stdout) \(max.stdout)")
    }

    /// A file cut short while `eddy eval` reads its mapping faults (SIGBUS; there is no way to read a
    /// page that is gone): the crash report names the file and what happened to it.
    @Test func aFileTruncatedWhileItIsReadIsNamedInTheCrashReport() throws {
        let scratch = ScratchDirectory()
        var text = "id,word\n"
        for i in 0..<300_000 { text += "\(i),w\(i % 977)x\(i)\n" }
        let csv = scratch.write("big.csv", text)
        let original = scratch.path + "/original.eddy"
        #expect(try Eddy.run(["convert", csv, original, "--chunk-rows", "4096"]).status == 0)
        let size = (try FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? 0
        var crashes = 0
        for attempt in 0..<3 {
            let file = scratch.path + "/cut\(attempt).eddy"
            try FileManager.default.copyItem(atPath: original, toPath: file)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Eddy.binary)
            p.arguments = ["eval", file, "--select", "id, word", "--format", "csv", "--threads", "2"]
            // SWIFT_BACKTRACE unset, as a user runs it: eddy's crash handler then ends the process with the
            // signal's default action instead of handing it to Swift's backtracer, which once never
            // finished with two threads faulting at once (its swift-backtrace child blocked reading from
            // the crashed process, 20 minutes in CI).
            p.environment = ["EDDY_PLUGIN_DIR": emptyPluginDirectory]
            let err = Pipe()
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            // Cut once the file is mapped (a fixed wait cut it before a loaded machine's `eddy` opened it, which
            // then refused a short file cleanly, and no attempt crashed).
            let maps = "/proc/\(p.processIdentifier)/maps"
            for _ in 0..<10_000 where p.isRunning {
                if let text = try? String(contentsOfFile: maps, encoding: .utf8), text.contains(file) { break }
                usleep(500)
            }
            #expect(truncate(file, off_t(size / 4)) == 0)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal {
                crashes += 1
                #expect(p.terminationStatus == SIGBUS, "\(p.terminationStatus): \(stderr)")
                #expect(stderr.contains("(SIGBUS) reading \(file): the file was truncated"), "\(stderr)")
            } else {
                // Finished before the cut, or stopped at a clean error naming the file.
                #expect(p.terminationStatus == 0 || stderr.contains(file), "\(stderr)")
            }
        }
        #expect(crashes > 0, "the file was never cut while it was read: make it larger")
    }

    @Test(arguments: ["2", "0"])
    func aPluginDroppedIntoARunningServerMakesItsFilesReadable(workers: String) throws {
        let scratch = ScratchDirectory()
        let csv = tripsCSV(scratch, rows: 1500)
        let v1 = ScratchDirectory()
        try v1.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        let file = scratch.path + "/served.eddy"
        let c = try Eddy.run(["convert", csv, file, "--plugin-dir", v1.path])
        #expect(c.status == 0, "\(c.stderr)")
        let dir = ScratchDirectory()
        let server = try Server(pluginDir: dir.path, arguments: ["--workers", workers])
        let (_, health0) = try server.request("GET", "/health")
        let (s0, r0) = try server.eval(file, where: "trip_id < 100100", select: "count(*)")
        #expect(s0 >= 400 && s0 < 500, "\(s0) \(r0)")
        #expect("\(r0)".contains("ext.delta") && "\(r0)".contains("delta 1.0.0"), "\(r0)")
        // count(*) alone, which a supervisor answers from the footer itself, still needs the plugin.
        let (sc, rc) = try server.eval(file, select: "count(*)")
        #expect(sc >= 400 && sc < 500 && "\(rc)".contains("ext.delta"), "\(sc) \(rc)")
        let plainFile = scratch.path + "/plain.eddy"
        #expect(try Eddy.run(["convert", csv, plainFile, "--plugin-dir", dir.path]).status == 0)
        try dir.copy(PluginFiles.built("EddyPluginDelta"), as: "delta.so")
        try server.waitForPlugin("delta.so") { $0?["status"] as? String == "loaded" }
        let (s1, r1) = try server.eval(file, where: "trip_id < 100100", select: "count(*), min(trip_id)")
        #expect(s1 == 200, "\(r1)")
        let rows = r1["result"] as? [[String: Any]] ?? []
        #expect(rows.first?["count(*)"] as? Int == 100 && rows.first?["min(trip_id)"] as? Int == 100_000, "\(r1)")
        // count(*) of a file of built-in encodings: from the footer in the supervisor (no worker), naming
        // the plugin set as the worker did.
        let (sf, rf) = try server.eval(plainFile, select: "count(*), count(*) as n")
        #expect(sf == 200 && (rf["result"] as? [[String: Any]])?.first?["n"] as? Int == 1500, "\(rf)")
        #expect((rf["answered_from"] as? String == "footer") == (workers != "0"), "\(rf)")
        #expect(rf["fingerprint"] as? String == r1["fingerprint"] as? String, "\(rf) \(r1)")
        // Again, now that the supervisor has the file open: answered on the request's own task.
        let (sg, rg) = try server.eval(plainFile, select: "count(*), count(*) as n")
        #expect(sg == 200 && (rg["result"] as? [[String: Any]])?.first?["n"] as? Int == 1500, "\(rg)")
        #expect((rg["answered_from"] as? String == "footer") == (workers != "0"), "\(rg)")
        let plugins = rf["plugins"] as? [[String: String]]
        #expect(plugins != nil && plugins == r1["plugins"] as? [[String: String]], "\(rf) \(r1)")
        // The server's own generation and fingerprint moved with the plugin set, isolated or not.
        let (_, health1) = try server.request("GET", "/health")
        let (_, listing) = try server.request("GET", "/plugins")
        #expect(
            (health1["generation"] as? Int ?? 0) > (health0["generation"] as? Int ?? 0), "\(health0) \(health1)")
        #expect(listing["fingerprint"] as? String == r1["fingerprint"] as? String, "\(listing)")
        #expect(rf["generation"] as? Int == r1["generation"] as? Int, "\(rf) \(r1)")
        #expect(health1["generation"] as? Int == r1["generation"] as? Int, "\(health1) \(r1)")
        // An .eddy body uploads too.
        let (s2, r2) = try server.request(
            "POST", "/eval?select=count(*)", body: try Data(contentsOf: URL(fileURLWithPath: file)),
            contentType: "application/octet-stream")
        #expect(s2 == 200 && (r2["result"] as? [[String: Any]])?.first?["count(*)"] as? Int == 1500, "\(r2)")
    }
}
