import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy` runs the one-shot commands in its own process, without the server's libraries, and hands
/// every other command line to `eddy-server` beside it (Sources/EddyCommands/EddyFront.swift).
@Suite struct FrontTests {
    /// The shared libraries the dynamic loader opened for one run (`LD_DEBUG=files`), by file name.
    static func loadedLibraries(_ args: [String], environment: [String: String] = [:]) throws -> (
        result: Eddy.Result, libraries: Set<String>
    ) {
        let r = try Eddy.run(args, environment: environment.merging(["LD_DEBUG": "files"]) { a, _ in a })
        var names = Set<String>()
        for line in r.stderr.split(separator: "\n") {
            guard let at = line.range(of: "file="), line.contains("needed by") else { continue }
            let rest = line[at.upperBound...]
            names.insert(String(rest.prefix { $0 != " " }))
        }
        return (r, names)
    }

    @Test func aOneShotEvalLoadsNeitherFoundationNorTheServer() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("ten.csv", "a,b\n" + (1...10).map { "\($0),x\($0 % 3)" }.joined(separator: "\n") + "\n")
        let empty = ScratchDirectory()
        let (r, libraries) = try Self.loadedLibraries([
            "eval", csv, "--where", "a > 4", "--select", "count(*), sum(a)", "--plugin-dir", empty.path,
        ])
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("6") && r.stdout.contains("45"), "\(r.stdout)")
        #expect(libraries.contains("libEddy.so"), "the loader's trace was not read: \(libraries.sorted())")
        // Foundation (its essentials too), Swift's concurrency and string-processing libraries and
        // swift-crypto cost about a third of a one-shot eval's start; a module on the eval path that
        // imports them (or links Dispatch's Swift overlay, or eddy handing eval to eddy-server) would
        // bring them back. Without plugins nothing needs them.
        for library in [
            "libFoundation.so", "lib_FoundationICU.so", "libFoundationEssentials.so", "libswift_Concurrency.so",
            "libswift_StringProcessing.so", "libswiftDispatch.so", "libEddyCrypto.so",
        ] {
            #expect(!libraries.contains(library), "\(library): \(libraries.sorted())")
        }
        // With plugins, libEddyCrypto.so (and what it needs) is opened to hash them; the answer is the same.
        // (Private copies of its own: a test running `eddy plugins` on the shared default directory at
        // the same time collects copies of builds not in its set, which would be hashed again here.)
        let plugins = try dir.plugins()
        let shadow = ScratchDirectory()
        chmod(shadow.path, 0o700)
        let env = ["EDDY_SHADOW_DIR": shadow.path]
        let (withPlugins, opened) = try Self.loadedLibraries(
            ["eval", csv, "--where", "a > 4", "--select", "count(*), sum(a)", "--plugin-dir", plugins.path],
            environment: env)
        #expect(withPlugins.status == 0 && withPlugins.stdout == r.stdout, "\(withPlugins.stderr.suffix(2000))")
        // (opened by descriptor, so the trace names what it needs: FoundationEssentials)
        #expect(opened.contains("libFoundationEssentials.so"), "\(opened.sorted())")
        // Once the plugin files and their private copies are some seconds old, their digests are
        // remembered by their identity (KnownDigests): a later run hashes nothing and opens neither.
        usleep(2_100_000)
        let args = ["eval", csv, "--where", "a > 4", "--select", "count(*), sum(a)", "--plugin-dir", plugins.path]
        let remembering = try Eddy.run(args, environment: env)
        #expect(remembering.status == 0 && remembering.stdout == r.stdout, "\(remembering.stderr.suffix(2000))")
        let (known, quiet) = try Self.loadedLibraries(args, environment: env)
        #expect(
            known.status == 0 && known.stdout == r.stdout && !known.stderr.contains("eddy: warning"),
            "\(known.stderr.suffix(2000))")
        for library in ["libEddyCrypto.so", "libFoundationEssentials.so", "libswift_Concurrency.so"] {
            #expect(!quiet.contains(library), "\(library): \(quiet.sorted())")
        }
        // Both plugins were loaded (their kernels are in the snapshot --explain names).
        let explained = try Eddy.run(args + ["--explain"], environment: env)
        #expect(
            explained.stderr.contains("delta@") && explained.stderr.contains("packed-dict-compare@"),
            "\(explained.stderr.suffix(2000))")
    }

    /// A plugin file changed through a shared mapping keeps its identity (on tmpfs its times do not
    /// move at all): the remembered digest must not stand for the new bytes.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/dev/shm")))
    func aPluginChangedWithoutItsTimesMovingIsHashedAgain() throws {
        let dir = ScratchDirectory()
        let csv = dir.write("t.csv", "a\n1\n2\n3\n")
        let shm = "/dev/shm/eddy-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: shm, withIntermediateDirectories: false)
        chmod(shm, 0o700)
        defer { try? FileManager.default.removeItem(atPath: shm) }
        let plugin = shm + "/delta.so"
        try FileManager.default.copyItem(atPath: PluginFiles.built("EddyPluginDelta"), toPath: plugin)
        // Compressed for storage: the delta plugin's hook is asked, so the build is mapped.
        let args = [
            "eval", csv, "--where", "a > 1", "--select", "sum(a)", "--plugin-dir", shm, "--explain", "--compression",
            "storage",
        ]
        func fingerprint(_ r: Eddy.Result) -> String? {
            r.stderr.split(separator: "\n").first { $0.contains("plugin set: ") }.map(String.init)
        }
        usleep(2_100_000)
        let before = try Eddy.run(args)
        #expect(before.status == 0 && fingerprint(before)?.contains("delta@1.0.0#") == true, "\(before.stderr)")
        // One byte of the compiler's note in the file, changed through a shared mapping.
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: plugin)))
        let marker = Array("Swift version".utf8)
        let at = try #require(
            (0..<(bytes.count - marker.count)).first { bytes[$0..<($0 + marker.count)].elementsEqual(marker) })
        var st = stat()
        #expect(stat(plugin, &st) == 0)
        let (inode, changed) = (st.st_ino, st.st_ctim.tv_nsec)
        let fd = open(plugin, O_RDWR)
        #expect(fd >= 0)
        let map = try #require(mmap(nil, bytes.count, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))
        #expect(map != MAP_FAILED)
        let p = map.assumingMemoryBound(to: UInt8.self)
        // Read first, then written (a write fault on a page not yet mapped moves the times on tmpfs).
        let old = p[at]
        p[at] = old ^ 0x20
        munmap(map, bytes.count)
        close(fd)
        #expect(stat(plugin, &st) == 0 && st.st_ino == inode)
        let timesMoved = st.st_ctim.tv_nsec != changed
        let after = try Eddy.run(args)
        #expect(after.status == 0 && after.stdout == before.stdout, "\(after.stderr)")
        // The new bytes are another build, probed and loaded under its own content hash (not refused
        // as a copy that changed, nor taken for the build whose digest the identity had).
        #expect(
            fingerprint(after)?.contains("delta@1.0.0#") == true && fingerprint(after) != fingerprint(before),
            "times moved: \(timesMoved); \(after.stderr)")
    }

    @Test func aQueryThatReadsNoColumnLoadsNoPluginUnlessItsFileNeedsOne() throws {
        let dir = ScratchDirectory()
        let csv = dir.write(
            "sorted.csv", "id,v\n" + (0..<5000).map { "\($0 * 3),\($0 % 7)" }.joined(separator: "\n") + "\n")
        let plugins = try dir.plugins()
        let empty = ScratchDirectory()
        // count(*) alone builds no array: the plugins are not even read (a broken one is not reported).
        _ = plugins.write("broken.so", "not an ELF file")
        let counted = try Eddy.run(["eval", csv, "--select", "count(*)", "--plugin-dir", plugins.path, "--explain"])
        #expect(counted.status == 0 && counted.stdout.contains("5000"), "\(counted.stderr)")
        #expect(counted.stderr.contains("plugin set: builtin only"), "\(counted.stderr)")
        #expect(counted.stderr.contains("== plugins: not loaded (the query reads no column"), "\(counted.stderr)")
        #expect(!counted.stderr.contains("broken.so"), "\(counted.stderr)")
        // A query that reads a column loads them (and says what is wrong with the broken one).
        let filtered = try Eddy.run([
            "eval", csv, "--where", "v = 3", "--select", "count(*)", "--plugin-dir", plugins.path, "--explain",
        ])
        #expect(filtered.status == 0 && filtered.stdout.contains("714"), "\(filtered.stderr)")
        #expect(filtered.stderr.contains("delta@1.0.0"), "\(filtered.stderr)")
        #expect(filtered.stderr.contains("broken.so rejected"), "\(filtered.stderr)")
        // An .eddy file that stores the delta plugin's encoding needs its storage even to be counted.
        let stored = dir.path + "/sorted.eddy"
        let converted = try Eddy.run(["convert", csv, stored, "--plugin-dir", plugins.path])
        #expect(converted.status == 0, "\(converted.stderr)")
        let inspected = try Eddy.run(["inspect", stored, "--plugin-dir", empty.path])
        #expect(inspected.stdout.contains("ext.delta"), "the file does not use the plugin: \(inspected.stdout)")
        let needed = try Eddy.run(["eval", stored, "--select", "count(*)", "--plugin-dir", plugins.path, "--explain"])
        #expect(needed.status == 0 && needed.stdout.contains("5000"), "\(needed.stderr)")
        #expect(needed.stderr.contains("delta@1.0.0") && !needed.stderr.contains("not loaded (the query"))
        let missing = try Eddy.run(["eval", stored, "--select", "count(*)", "--plugin-dir", empty.path])
        #expect(missing.status == 1 && missing.stderr.contains("needs encoding ext.delta"), "\(missing.stderr)")
        // One that stores only the engine's encodings is counted without them.
        let plain = dir.path + "/plain.eddy"
        #expect(try Eddy.run(["convert", csv, plain, "--plugin-dir", empty.path]).status == 0)
        let quick = try Eddy.run(["eval", plain, "--select", "count(*)", "--plugin-dir", plugins.path, "--explain"])
        #expect(quick.status == 0 && quick.stdout.contains("5000"), "\(quick.stderr)")
        #expect(quick.stderr.contains("plugin set: builtin only"), "\(quick.stderr)")
    }

    @Test func everyOtherCommandLineIsEddyServers() throws {
        // eddy runs a well-formed eval line only (EddyFront); each command's help, eval's among them, and
        // every other command comes from eddy-server's tree.
        for name in ["eval", "convert", "inspect", "kernels", "keygen", "sign", "verify", "new-plugin", "probe-plugin"]
        {
            let (r, libraries) = try Self.loadedLibraries([name, "--help"])
            #expect(r.status == 0 && r.stdout.contains("USAGE: eddy \(name)"), "\(name): \(r.stderr.suffix(500))")
            #expect(libraries.contains("libFoundation.so"), "eddy \(name) --help did not run in eddy-server")
        }
        let (plugins, _) = try Self.loadedLibraries(["plugins", "--json"])
        #expect(plugins.status == 0 && plugins.stdout.contains("\"files\""), "\(plugins.stderr.suffix(500))")
        // An eval line with a mistake is worded by ArgumentParser, with eval's usage.
        let wrong = try Eddy.run(["eval", "x.csv", "--threads", "many"])
        #expect(wrong.status == 64 && wrong.stderr.contains("--threads"), "\(wrong.status) \(wrong.stderr)")
    }

    @Test func aCryptoLibrarySomeoneElseCouldHaveReplacedIsNotOpened() throws {
        let dir = ScratchDirectory()
        let built = URL(fileURLWithPath: Eddy.binary).deletingLastPathComponent().path
        for file in ["eddy", "libEddy.so", "libEddyCrypto.so"] {
            try FileManager.default.copyItem(atPath: built + "/" + file, toPath: dir.path + "/" + file)
        }
        chmod(dir.path + "/libEddyCrypto.so", 0o775)
        let csv = dir.write("t.csv", "a\n1\n2\n3\n")
        let plugins = try dir.plugins()
        // --no-probe: this host hashes the plugins itself (the probe would be eddy-server's, not copied here).
        let r = try Eddy.run(
            ["eval", csv, "--select", "sum(a)", "--plugin-dir", plugins.path, "--no-probe", "--format", "csv"],
            executable: dir.path + "/eddy")
        #expect(r.status == 0 && r.stdout == "sum(a)\n6\n", "\(r.stdout) \(r.stderr)")
        #expect(
            r.stderr.contains("cannot hash it: libEddyCrypto.so (SHA-256 and Ed25519 for plugins) is not used")
                && r.stderr.contains("writable by its group"), "\(r.stderr)")

        // Cut short (the loader would touch a page past its end: SIGBUS), a FIFO (an open would wait for
        // a writer), a link: each refused by name, the query answered without the plugins.
        let library = dir.path + "/libEddyCrypto.so"
        chmod(library, 0o755)
        truncate(library, 100_000)
        let cut = try Eddy.run(
            ["eval", csv, "--select", "sum(a)", "--plugin-dir", plugins.path, "--no-probe", "--format", "csv"],
            executable: dir.path + "/eddy")
        #expect(cut.status == 0 && cut.stdout == "sum(a)\n6\n", "\(cut.status) \(cut.stderr)")
        #expect(cut.stderr.contains("a loadable segment ends past the file"), "\(cut.stderr)")
        unlink(library)
        mkfifo(library, 0o644)
        let fifo = try Eddy.run(
            ["eval", csv, "--select", "sum(a)", "--plugin-dir", plugins.path, "--no-probe", "--format", "csv"],
            executable: dir.path + "/eddy")
        #expect(fifo.status == 0 && fifo.stderr.contains("is not a regular file"), "\(fifo.status) \(fifo.stderr)")
        unlink(library)
        symlink(built + "/libEddyCrypto.so", library)
        let link = try Eddy.run(
            ["eval", csv, "--select", "sum(a)", "--plugin-dir", plugins.path, "--no-probe", "--format", "csv"],
            executable: dir.path + "/eddy")
        #expect(link.status == 0 && link.stderr.contains("a symbolic link, not followed"), "\(link.stderr)")
        // Plugins and no eddy-server beside eddy: the probe cannot start, and the row says why.
        unlink(library)
        try FileManager.default.copyItem(atPath: built + "/libEddyCrypto.so", toPath: library)
        let probed = try Eddy.run(
            ["eval", csv, "--select", "sum(a)", "--plugin-dir", plugins.path, "--format", "csv"],
            executable: dir.path + "/eddy")
        #expect(probed.status == 0 && probed.stdout == "sum(a)\n6\n", "\(probed.stderr)")
        #expect(probed.stderr.contains("eddy-server, which runs the probe beside eddy, is missing"), "\(probed.stderr)")
        // A FIFO where eddy-server should be is refused, not waited on.
        mkfifo(dir.path + "/eddy-server", 0o755)
        let help = try Eddy.run(["kernels"], executable: dir.path + "/eddy")
        #expect(help.status == 126 && help.stderr.contains("not a regular file"), "\(help.status) \(help.stderr)")
    }

    @Test func theServerAndTheTopLevelHelpAreEddyServers() throws {
        let (serve, served) = try Self.loadedLibraries(["serve", "--help"])
        #expect(serve.status == 0 && serve.stdout.contains("USAGE: eddy serve"), "\(serve.stderr.suffix(2000))")
        #expect(served.contains("libFoundation.so"), "serve ran without eddy-server: \(served.sorted())")
        let help = try Eddy.run(["--help"])
        for command in ["eval", "serve", "replay", "plugins", "new-plugin"] {
            #expect(help.stdout.contains("\n  \(command) "), "eddy --help lacks \(command): \(help.stdout)")
        }
        let plugins = try Eddy.run(["plugins", "--help"])
        #expect(plugins.stdout.contains("promote"), "\(plugins.stdout)")
        let typo = try Eddy.run(["evl"])
        #expect(typo.status == 64 && typo.stderr.contains("Unexpected argument 'evl'"), "\(typo.status) \(typo.stderr)")
    }

    @Test func anEddyServerSomeoneElseCouldHavePutThereIsNotRun() throws {
        let dir = ScratchDirectory()
        let built = URL(fileURLWithPath: Eddy.binary).deletingLastPathComponent().path
        for file in ["eddy", "libEddy.so"] {
            try FileManager.default.copyItem(atPath: built + "/" + file, toPath: dir.path + "/" + file)
        }
        let marker = dir.path + "/ran"
        let planted = dir.write("eddy-server", "#!/bin/sh\ntouch '\(marker)'\n")
        let lone = dir.path + "/eddy"
        // Writable by its group: anyone in it could have replaced it.
        chmod(planted, 0o775)
        let grouped = try Eddy.run(["--help"], executable: lone)
        #expect(grouped.status == 126, "\(grouped.status) \(grouped.stderr)")
        #expect(grouped.stderr.contains("writable by its group"), "\(grouped.stderr)")
        // Owned by another user (when this test may give it away).
        chmod(planted, 0o755)
        if geteuid() == 0, chown(planted, 65534, 65534) == 0 {
            let foreign = try Eddy.run(["serve"], executable: lone)
            #expect(foreign.status == 126, "\(foreign.status) \(foreign.stderr)")
            #expect(foreign.stderr.contains("owned by uid 65534"), "\(foreign.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "the planted eddy-server ran")
    }

    @Test func withoutEddyServerBesideItEddyStillEvaluatesAndSaysWhatIsMissing() throws {
        let dir = ScratchDirectory()
        let built = URL(fileURLWithPath: Eddy.binary).deletingLastPathComponent().path
        for file in ["eddy", "libEddy.so"] {
            try FileManager.default.copyItem(atPath: built + "/" + file, toPath: dir.path + "/" + file)
        }
        let csv = dir.write("t.csv", "a\n1\n2\n3\n")
        let lone = dir.path + "/eddy"
        func run(_ args: [String]) throws -> Eddy.Result { try Eddy.run(args, executable: lone) }
        let eval = try run(["eval", csv, "--select", "sum(a)"])
        #expect(eval.status == 0 && eval.stdout.contains("6"), "\(eval.stdout) \(eval.stderr)")
        let serve = try run(["serve", "--port", "0"])
        #expect(serve.status == 127, "\(serve.status)")
        #expect(serve.stderr.contains("`eddy serve` is run by eddy-server"), "\(serve.stderr)")
        #expect(serve.stderr.contains(dir.path + "/eddy-server"), "\(serve.stderr)")
    }
}
