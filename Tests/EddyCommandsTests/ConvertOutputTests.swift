import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What `eddy convert` writes, and what it must never write over (issue 27).
@Suite struct ConvertOutputTests {
    /// A small `--chunk-rows` does not narrow type inference: a column empty in the first row and
    /// integers below is `i64` whatever the chunk size (it was `utf8` at `--chunk-rows 1`, and a
    /// comparison with a number then failed), and the chunks are still that size.
    @Test func aSmallChunkSizeInfersTheSameTypes() throws {
        let work = ScratchDirectory()
        let csv = work.write(
            "t.csv",
            "id,n\n" + (0..<200).map { "\($0),\($0 == 0 ? "" : String($0 % 10))" }.joined(separator: "\n") + "\n")
        for chunk in ["1", "7", "65536"] {
            let out = work.path + "/t\(chunk).eddy"
            let r = try Eddy.run(["convert", csv, out, "--chunk-rows", chunk])
            #expect(r.status == 0, "\(chunk): \(r.stderr)")
            let inspected = try Eddy.run(["inspect", out, "--json"])
            let object = try JSONSerialization.jsonObject(with: Data(inspected.stdout.utf8)) as? [String: Any]
            let chunks = object?["chunks"] as? Int ?? 0
            #expect(chunks == (chunk == "1" ? 200 : chunk == "7" ? 29 : 1), "\(chunk): \(chunks) chunks")
            let q = try Eddy.run(["eval", out, "--where", "n > 5", "--select", "count(*), sum(n)", "--format", "csv"])
            #expect(q.status == 0 && q.stdout == "count(*),sum(n)\n80,600\n", "\(chunk): \(q.stdout) \(q.stderr)")
        }
    }

    /// Another user pre-created every name the old `OUT.partial-<pid>` could take, 0666, in a shared
    /// sticky directory: root's conversion opened one of them without O_EXCL and the finished file was
    /// that user's, mode 0666. The temporary file is now a new one of its own (O_EXCL, a random name),
    /// so the output is root's, 0644 less the umask, and every planted file is left as it was.
    @Test(.enabled(if: geteuid() == 0, "plays another user (uid 65534): run as root"))
    func aConversionInASharedDirectoryNeverWritesIntoAFileAnotherUserPlanted() throws {
        let work = ScratchDirectory()
        let csv = tripsCSV(work, rows: 500)
        let shared = ScratchDirectory()
        chmod(shared.path, 0o1777)
        let last =
            (try? String(contentsOfFile: "/proc/sys/kernel/ns_last_pid", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
        // The next 4,000 process ids as the old name used them, and names without an id.
        let plant = Process()
        plant.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        plant.arguments = [
            "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c",
            "umask 0; cd '\(shared.path)' || exit 1; i=\(last); while [ $i -le \(last + 4000) ]; do "
                + ": > out.eddy.partial-$i; i=$((i+1)); done; : > out.eddy.partial; : > out.eddy.tmp",
        ]
        try plant.run()
        plant.waitUntilExit()
        #expect(plant.terminationStatus == 0)
        let planted = try FileManager.default.contentsOfDirectory(atPath: shared.path)
        #expect(planted.count == 4003)

        let out = shared.path + "/out.eddy"
        let r = try Eddy.run(["convert", csv, out])
        #expect(r.status == 0, "\(r.stderr)")
        let mask = umask(0)
        umask(mask)
        var st = stat()
        #expect(lstat(out, &st) == 0)
        #expect(
            st.st_uid == 0 && st.st_mode & 0o7777 == 0o644 & ~mask,
            "uid \(st.st_uid) mode \(String(st.st_mode, radix: 8))")
        // Every planted file is still the other user's and empty; nothing else was left behind.
        let after = try FileManager.default.contentsOfDirectory(atPath: shared.path)
        #expect(Set(after) == Set(planted).union(["out.eddy"]), "\(Set(after).subtracting(planted))")
        for name in planted {
            var p = stat()
            #expect(lstat(shared.path + "/" + name, &p) == 0 && p.st_uid == 65534 && p.st_size == 0, "\(name)")
        }
        let read = try Eddy.run(["eval", out, "--select", "count(*)", "--format", "csv"])
        #expect(read.status == 0 && read.stdout.contains("500"), "\(read)")
    }

    /// `eddy convert s.csv precious.csv` (arguments the wrong way round) replaced the CSV with an .eddy
    /// file. An existing output that is not an .eddy file is now refused without --force.
    @Test func anExistingFileThatIsNotAnEddyFileIsNotReplacedWithoutForce() throws {
        let dir = ScratchDirectory()
        let small = dir.write("s.csv", "a,b\n1,2\n")
        let precious = tripsCSV(dir, rows: 2000)
        let before = try Data(contentsOf: URL(fileURLWithPath: precious))
        let swapped = try Eddy.run(["convert", small, precious])
        #expect(swapped.status == 1, "\(swapped)")
        #expect(
            swapped.stderr.contains(precious) && swapped.stderr.contains("is not an .eddy file")
                && swapped.stderr.contains("--force"), "\(swapped.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: precious)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["s.csv", "trips.csv"])

        // An .eddy file is replaced as before; --force replaces anything.
        let eddy = dir.path + "/s.eddy"
        #expect(try Eddy.run(["convert", small, eddy]).status == 0)
        let again = try Eddy.run(["convert", precious, eddy])
        #expect(again.status == 0 && again.stdout.contains("2000 rows"), "\(again)")
        let forced = try Eddy.run(["convert", small, precious, "--force"])
        #expect(forced.status == 0, "\(forced)")
        let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: precious)).readData(ofLength: 8)
        #expect(head == Data("EDDYFILE".utf8))
    }

    @Test func aPipeOrDeviceIsNeverReplacedEvenWithForce() throws {
        let dir = ScratchDirectory()
        let small = dir.write("s.csv", "a,b\n1,2\n")
        let fifo = dir.path + "/out.eddy"
        #expect(mkfifo(fifo, 0o600) == 0)
        for extra in [[], ["--force"]] {
            let r = try Eddy.run(["convert", small, fifo] + extra)
            #expect(r.status == 1 && r.stderr.contains("is not a regular file"), "\(r)")
            #expect(!r.stderr.contains("give --force"), "\(r.stderr)")
            var st = stat()
            #expect(lstat(fifo, &st) == 0 && st.st_mode & S_IFMT == S_IFIFO)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["out.eddy", "s.csv"])
    }
}
