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
    static func loadedLibraries(_ args: [String]) throws -> (result: Eddy.Result, libraries: Set<String>) {
        let r = try Eddy.run(args, environment: ["LD_DEBUG": "files"])
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
        let (r, libraries) = try Self.loadedLibraries(["eval", csv, "--where", "a > 4", "--select", "count(*), sum(a)"])
        #expect(r.status == 0, "\(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("6") && r.stdout.contains("45"), "\(r.stdout)")
        #expect(libraries.contains("libEddy.so"), "the loader's trace was not read: \(libraries.sorted())")
        // Full Foundation and its ICU data cost about 4 ms of every process start; a module on the eval
        // path importing Foundation (or eddy handing eval to eddy-server) would bring them back.
        #expect(!libraries.contains("libFoundation.so"), "\(libraries.sorted())")
        #expect(!libraries.contains("lib_FoundationICU.so"), "\(libraries.sorted())")
    }

    @Test func everyCommandEddyRunsItselfIsACommandOfItsOwn() throws {
        // EddyFront.inProcessNames (EddyEntry.directlyParsed and plugins): a name that is not one of eddy's own commands
        // would fail to parse in eddy's process ("Unexpected argument").
        for name in ["eval", "convert", "inspect", "kernels", "keygen", "sign", "verify", "new-plugin", "probe-plugin"]
        {
            let (r, libraries) = try Self.loadedLibraries([name, "--help"])
            #expect(r.status == 0 && r.stdout.contains("USAGE: eddy \(name)"), "\(name): \(r.stderr.suffix(500))")
            #expect(!libraries.contains("libFoundation.so"), "eddy \(name) ran in eddy-server")
        }
        // `eddy plugins --help` lists the server's subcommands, so it is eddy-server's; the scan is eddy's.
        let (plugins, libraries) = try Self.loadedLibraries(["plugins", "--json"])
        #expect(plugins.status == 0 && plugins.stdout.contains("\"files\""), "\(plugins.stderr.suffix(500))")
        #expect(!libraries.contains("libFoundation.so"), "eddy plugins ran in eddy-server")
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
