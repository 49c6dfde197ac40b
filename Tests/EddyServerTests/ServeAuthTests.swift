import EddyHostTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `eddy serve` requires a bearer token by default: another local user (uid 65534) cannot read
/// root's files through root's server, nor the token it keeps in a private file.
@Suite(.serialized) struct ServeAuthTests {
    /// A data directory with a file only root may read (0600), as in the issue.
    final class RootOnlyData {
        let root = ScratchDirectory()
        let data: String
        let marker = "root-only-value-\(UInt32.random(in: 0...UInt32.max))"

        init() {
            chmod(root.path, 0o755)
            data = root.path + "/data"
            try? FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
            chmod(data, 0o755)
            let file = ScratchDirectory.write(at: data + "/secret.csv", "name,value\n\(marker),1\n")
            chmod(file, 0o600)
        }
    }

    /// curl run as uid/gid 65534 with no supplementary groups (`setpriv`): status and body.
    static func curlAsNobody(_ arguments: [String]) throws -> (status: Int, body: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments =
            ["--reuid", "65534", "--regid", "65534", "--clear-groups", "curl", "-s", "-w", "\n%{http_code}"]
            + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static func nobodyEval(port: Int, path: String, headers: [String] = []) throws -> (status: Int, body: String) {
        try curlAsNobody(
            ["-X", "POST", "-H", "Content-Type: application/json", "--data", #"{"path": "\#(path)"}"#]
                + headers.flatMap { ["-H", $0] } + ["http://127.0.0.1:\(port)/eval"])
    }

    static let canPlayNobody =
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")

    @Test(.enabled(if: canPlayNobody, "needs root, setpriv and curl to play uid 65534"))
    func anotherLocalUserGets401ForARootOnlyFileAtTheDefaultSettings() throws {
        let fixture = RootOnlyData()
        let server = try Server(pluginDir: ScratchDirectory().path, dataDirs: [fixture.data])
        let port = server.port
        let asNobody = try Self.nobodyEval(port: port, path: "secret.csv")
        #expect(asNobody.status == 401 && asNobody.body.contains("bearer token"), "\(asNobody)")
        #expect(!asNobody.body.contains(fixture.marker))
        // /plugins shows paths: closed too; /health stays open.
        let plugins = try Self.curlAsNobody(["http://127.0.0.1:\(port)/plugins"])
        #expect(plugins.status == 401 && !plugins.body.contains(server.pluginDir), "\(plugins)")
        let health = try Self.curlAsNobody(["http://127.0.0.1:\(port)/health"])
        #expect(health.status == 200, "\(health)")
        // The token file is not readable by that user either.
        let file = try #require(server.tokenFile)
        let token = try #require(server.token)
        let read = try Self.curlAsNobody(["file://" + file])
        #expect(read.status == 0 && !read.body.contains(token), "\(read)")
        // A guessed token is refused; the owner, with the token, reads the file.
        let guessed = try Self.nobodyEval(
            port: port, path: "secret.csv", headers: ["Authorization: Bearer " + String(repeating: "0", count: 64)])
        #expect(guessed.status == 401 && !guessed.body.contains(fixture.marker), "\(guessed)")
        let (status, owner) = try server.request("POST", "/eval", json: ["path": "secret.csv"])
        #expect(status == 200 && "\(owner)".contains(fixture.marker), "\(owner)")
    }

    @Test(.enabled(if: canPlayNobody, "needs root, setpriv and curl to play uid 65534"))
    func noTokenIsAnExplicitOptOutThatWarnsWhatItOpens() throws {
        let fixture = RootOnlyData()
        let server = try Server(pluginDir: ScratchDirectory().path, dataDirs: [fixture.data], arguments: ["--no-token"])
        // What the default guards against, made possible on purpose, and said at start.
        let asNobody = try Self.nobodyEval(port: server.port, path: "secret.csv")
        #expect(asNobody.status == 200 && asNobody.body.contains(fixture.marker), "\(asNobody)")
        #expect(
            server.logText.contains("any local user can call this server and read what it can read under --data-dir"),
            "\(server.logText)")
        #expect(server.logText.contains("auth=none") && !server.logText.contains("token_file="))
        let remote = try Eddy.run(["serve", "--no-token", "--hostname", "0.0.0.0", "--port", "0"])
        #expect(remote.status == 2 && remote.stderr.contains("--no-token is for loopback only"), "\(remote.stderr)")
        let both = try Eddy.run(["serve", "--no-token", "--token-file", "/nonexistent/t", "--port", "0"])
        #expect(both.status == 64 && both.stderr.contains("--no-token cannot go with --token-file"), "\(both.stderr)")
    }

    @Test func theDefaultTokenIsFreshPrivateNamedInTheLogAndRemovedOnStop() throws {
        let runtime = ScratchDirectory()
        chmod(runtime.path, 0o700)
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": runtime.path])
        let file = try #require(server.tokenFile)
        let token = try #require(server.token)
        #expect(file == runtime.path + "/eddy/serve-\(server.process.processIdentifier).token")
        #expect(token.count >= 32 && token.allSatisfy(\.isHexDigit), "\(token)")
        var st = stat()
        #expect(lstat(file, &st) == 0 && st.st_mode & S_IFMT == S_IFREG && st.st_mode & 0o777 == 0o600)
        #expect(st.st_uid == geteuid())
        #expect(lstat(runtime.path + "/eddy", &st) == 0 && st.st_mode & 0o777 == 0o700)
        // The log names the file and the header, never the token.
        #expect(server.logText.contains("Authorization: Bearer"), "\(server.logText)")
        #expect(!server.logText.contains(token))
        #expect(try server.request("GET", "/kernels", authorized: false).0 == 401)
        #expect(try server.request("GET", "/kernels").0 == 200)
        // Another start makes another token.
        let second = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(second.token != nil && second.token != token)
        server.stop()
        #expect(server.process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: file), "the token file outlived a graceful stop")
        #expect(FileManager.default.fileExists(atPath: try #require(second.tokenFile)))
    }

    /// A server killed without a graceful stop leaves its token file; the next start removes the
    /// files of servers that are gone and keeps those of live ones.
    @Test func tokenFilesOfServersThatAreGoneAreRemovedAtStart() throws {
        let runtime = ScratchDirectory()
        chmod(runtime.path, 0o700)
        let killed = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": runtime.path])
        let left = try #require(killed.tokenFile)
        kill(killed.process.processIdentifier, SIGKILL)
        killed.process.waitUntilExit()
        #expect(FileManager.default.fileExists(atPath: left))
        let live = runtime.path + "/eddy/serve-\(getpid()).token"
        #expect(FileManager.default.createFile(atPath: live, contents: Data("x\n".utf8)))
        let next = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(!FileManager.default.fileExists(atPath: left), "the killed server's token file is still there")
        #expect(FileManager.default.fileExists(atPath: live))
        #expect(try next.request("GET", "/plugins").0 == 200)
    }

    @Test func withoutARuntimeDirectoryTheTokenLivesInDotEddyOfHome() throws {
        let home = ScratchDirectory()
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": "", "HOME": home.path])
        #expect(server.tokenFile == home.path + "/.eddy/serve-\(server.process.processIdentifier).token")
        #expect(try server.request("GET", "/plugins").0 == 200)
    }

    /// Under sudo, HOME is often the caller's: the token goes to the effective user's own home.
    @Test(.enabled(if: geteuid() == 0, "needs root to give a directory to another user"))
    func aHomeOfAnotherUserIsNotUsed() throws {
        let home = ScratchDirectory()
        chown(home.path, 65534, 65534)
        let server = try Server(
            pluginDir: ScratchDirectory().path, dataDirs: [], environment: ["XDG_RUNTIME_DIR": "", "HOME": home.path])
        let home0 = String(cString: getpwuid(0).pointee.pw_dir)
        #expect(server.tokenFile?.hasPrefix(home0 + "/.eddy/") == true, "\(server.tokenFile ?? "")")
        #expect(!FileManager.default.fileExists(atPath: home.path + "/.eddy"))
    }

    /// A private directory that is not private is refused, naming it and what is wrong; nothing is
    /// written through a link.
    @Test(arguments: ["symlink", "open mode", "other owner"])
    func anUnsafeTokenDirectoryIsRefused(kind: String) throws {
        let home = ScratchDirectory()
        let elsewhere = ScratchDirectory()
        let dir = home.path + "/.eddy"
        let expected: String
        switch kind {
        case "symlink":
            try FileManager.default.createSymbolicLink(atPath: dir, withDestinationPath: elsewhere.path)
            expected = "it is a symbolic link"
        case "open mode":
            mkdir(dir, 0o700)
            chmod(dir, 0o755)
            expected = "mode 0755 lets other users in; chmod 700 it"
        default:
            guard geteuid() == 0 else { return }
            mkdir(dir, 0o700)
            chown(dir, 65534, 65534)
            expected = "owned by uid 65534"
        }
        let r = try Eddy.run(
            ["serve", "--port", "0", "--workers", "0"], environment: ["XDG_RUNTIME_DIR": "", "HOME": home.path])
        #expect(r.status == 2 && r.stderr.contains("token directory \(dir): \(expected)"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere.path).isEmpty)
    }

    @Test func aTokenFileThatDoesNotExistIsCreatedPrivateAndReadOnTheNextStart() throws {
        let dir = ScratchDirectory()
        let path = dir.path + "/token"
        let first = try Server(pluginDir: ScratchDirectory().path, dataDirs: [], arguments: ["--token-file", path])
        #expect(first.tokenFile == path)
        let token = try #require(first.token)
        var st = stat()
        #expect(lstat(path, &st) == 0 && st.st_mode & 0o777 == 0o600 && token.count >= 32)
        #expect(first.logText.contains("created=true"))
        #expect(try first.request("GET", "/plugins", authorized: false).0 == 401)
        #expect(try first.request("GET", "/plugins").0 == 200)
        first.stop()
        // Kept: the next start reads it, and the same token works.
        #expect(FileManager.default.fileExists(atPath: path))
        let second = try Server(pluginDir: ScratchDirectory().path, dataDirs: [], arguments: ["--token-file", path])
        #expect(second.token == token && second.logText.contains("created=false"))
        #expect(try second.request("GET", "/plugins").0 == 200)
    }

    /// A 0600 token file another user made under the name (in a shared directory, before the
    /// server's first start) holds a token that user knows: refused, as is a link there.
    @Test(.enabled(if: geteuid() == 0, "needs root to give a file to another user"))
    func aTokenFileAnotherUserPlantedIsRefused() throws {
        let shared = ScratchDirectory()
        chmod(shared.path, 0o1777)
        let planted = shared.write("token", "known-to-uid-65534-0123456789\n")
        chmod(planted, 0o600)
        chown(planted, 65534, 65534)
        let r = try Eddy.run(["serve", "--port", "0", "--workers", "0", "--token-file", planted])
        #expect(r.status == 2 && r.stderr.contains("owned by uid 65534, not by uid 0"), "\(r.stderr)")
        let link = shared.path + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: planted)
        let viaLink = try Eddy.run(["serve", "--port", "0", "--workers", "0", "--token-file", link])
        #expect(viaLink.status == 2 && viaLink.stderr.contains("--token-file \(link): "), "\(viaLink.stderr)")
    }

    /// A non-loopback address no longer needs --token-file: the server's own token guards it.
    @Test func aNonLoopbackAddressGetsTheDefaultToken() throws {
        let home = ScratchDirectory()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Eddy.binary)
        p.arguments = ["serve", "--hostname", "0.0.0.0", "--port", "0", "--workers", "0", "--plugin-dir", home.path]
        p.environment = ProcessInfo.processInfo.environment.merging(["XDG_RUNTIME_DIR": "", "HOME": home.path]) {
            $1
        }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var text = ""
        let handle = err.fileHandleForReading
        while !text.contains("eddy serve listening") {
            let d = handle.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        p.terminate()
        p.waitUntilExit()
        #expect(text.contains("auth=bearer") && text.contains("token_file=\(home.path)/.eddy/"), "\(text)")
    }
}
