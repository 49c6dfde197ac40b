@_spi(Host) import Eddy
@_spi(Host) import EddyHost
@_spi(Host) import EddyIO
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// What a server keeps when a worker crashes, overruns its deadline or is killed for memory, so that a
/// plugin author can run the request again (`eddy replay BUNDLE`): one directory per event, in an
/// owner-only directory (`$EDDY_BUNDLE_DIR`, else `~/.eddy/crash-bundles`), at most ``maxBundles`` of
/// them (the oldest go first).
///
/// A bundle holds `bundle.json` — the request (expression, input and output format, threads, the
/// deadline and memory limit it ran under), the input (the path the server opened, its size and
/// SHA-256), the plugin set (name, version, SHA-256 and private copy of each build), the worker's exit
/// cause and the plugin code it was running (its crash line) — and, for an uploaded body, `input`:
/// the body's first ``maxUploadBytes`` bytes. Never the request's headers, so never the bearer token.
struct CrashBundles: Sendable {
    let directory: String
    static let maxBundles = 32
    static let maxUploadBytes = 16 << 20
    /// A file larger than this is not hashed (the bundle says so): a crash must not read a huge file.
    static let maxHashedBytes = 1 << 30

    /// `$EDDY_BUNDLE_DIR`, else `$HOME/.eddy/crash-bundles`.
    static var defaultDirectory: String {
        if let env = getenv("EDDY_BUNDLE_DIR").map({ String(cString: $0) }), env.hasPrefix("/") { return env }
        let home = getenv("HOME").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        return home + "/.eddy/crash-bundles"
    }

    /// The kind of event, from the worker's exit cause.
    static func kind(cause: String, timedOut: Bool) -> String {
        if timedOut { return "timeout" }
        // An answer that differed from the serving build's (a canary, see Canary.swift) or from
        // decode-then-compute (a shadow check): nothing crashed.
        if cause.hasPrefix("canary divergence") || cause.hasPrefix("wrong answer") { return "divergence" }
        if cause.contains("(SIGKILL") || cause.contains("out of --worker-memory") { return "memory" }
        return "crash"
    }

    /// Opens (creating 0700 as needed) the bundle directory: this user's, closed to everyone else. -1
    /// and why when it cannot be used.
    func openDirectory() -> (Int32, String?) {
        let parent = (directory as NSString).deletingLastPathComponent
        if mkdir(parent, 0o700) != 0 && errno != EEXIST {
            return (-1, "cannot create \(parent): \(String(cString: strerror(errno)))")
        }
        if mkdir(directory, 0o700) != 0 && errno != EEXIST {
            return (-1, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return (-1, "cannot open \(directory): \(String(cString: strerror(errno)))") }
        guard let facts = FileFacts(descriptor: fd), facts.owner == geteuid(), facts.permissions & 0o077 == 0 else {
            close(fd)
            return (-1, "\(directory) refused: not this user's, or open to others (expected mode 0700)")
        }
        return (fd, nil)
    }

    /// Writes a bundle; its path, or why none was written.
    func write(
        kind: String, cause: String, site: String?, job: EvalRequest.Job?, plugins: [LoadedPlugin],
        options: ServerOptions
    ) -> Result<String, BundleError> {
        let (dirfd, problem) = openDirectory()
        guard dirfd >= 0 else { return .failure(BundleError(problem ?? "cannot open the bundle directory")) }
        defer { close(dirfd) }
        prune(dirfd, keeping: Self.maxBundles - 1)
        let seconds = Date().timeIntervalSince1970.rounded(.down)
        let name =
            "\(PluginHost.isoTime(seconds).replacingOccurrences(of: ":", with: ""))-"
            + "\(kind)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        guard mkdirat(dirfd, name, 0o700) == 0 else {
            return .failure(BundleError("mkdir \(name): \(String(cString: strerror(errno)))"))
        }
        let bundlefd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard bundlefd >= 0 else { return .failure(BundleError("open \(name): \(String(cString: strerror(errno)))")) }
        defer { close(bundlefd) }

        var request = CrashBundleRecord.Request()
        request.evalTimeout = options.evalTimeout
        request.workerMemory = options.workerMemory
        var input = CrashBundleRecord.Input()
        if let job {
            request.inputFormat = job.inputFormat
            request.format = job.format
            request.threads = job.threads
            request.compression = .string(job.compression)
            request.where = job.where
            request.select = job.select
            input.uploaded = job.uploaded
            if !job.uploaded { input.path = job.path }
            if let fd = job.file?.descriptor {
                // The path as the request named it is relative to a data directory: the file the server
                // opened is where `eddy replay` looks first.
                if !job.uploaded, let opened = CrashBundle.openedPath(fd) { input.openedPath = opened }
                let end = lseek(fd, 0, SEEK_END)
                if end >= 0 {
                    let size = Int(end)
                    input.bytes = size
                    if size <= Self.maxHashedBytes, let hash = Self.sha256(fd, bytes: size) { input.sha256 = hash }
                    if job.uploaded {
                        let kept = min(size, Self.maxUploadBytes)
                        if Self.copy(fd, bytes: kept, into: bundlefd, as: "input") {
                            input.body = "input"
                            input.bodyTruncated = kept < size
                        }
                    }
                }
            }
        }
        let record = CrashBundleRecord(
            time: PluginHost.isoTime(seconds), kind: kind, cause: cause, site: site ?? "",
            crashLine: kind == "divergence"
                ? cause : "the evaluation's worker \(cause)" + (site.map { " in \($0)" } ?? " outside plugin code"),
            request: request, input: input,
            plugins: plugins.map {
                CrashBundleRecord.Build(
                    name: $0.name, version: $0.version, sha256: $0.contentHash,
                    copy: PluginHost.baseName($0.shadowPath))
            })
        let bytes = ReplyJSON.encode(record)
        guard Self.writeFile(bundlefd, "bundle.json", bytes) else {
            return .failure(BundleError("cannot write \(name)/bundle.json: \(String(cString: strerror(errno)))"))
        }
        return .success(directory + "/" + name)
    }

    struct BundleError: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Removes the oldest bundles (names start with their time) until at most `keeping` are left.
    private func prune(_ dirfd: Int32, keeping: Int) {
        let names = FileFacts.names(in: dirfd).filter { !$0.hasPrefix(".") }
        for old in names.sorted().dropLast(max(0, keeping)) { Self.removeBundle(dirfd, old) }
    }

    /// Removes one bundle directory (its regular files, then itself), never following a link.
    static func removeBundle(_ dirfd: Int32, _ name: String) {
        let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd >= 0 {
            for file in ["bundle.json", "input"] { unlinkat(fd, file, 0) }
            close(fd)
        }
        if unlinkat(dirfd, name, AT_REMOVEDIR) != 0 { unlinkat(dirfd, name, 0) }
    }

    static func writeFile(_ dirfd: Int32, _ name: String, _ bytes: [UInt8]) -> Bool {
        let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return PluginFileIO.writeFully(fd, bytes)
    }

    /// Copies the first `bytes` bytes of `fd` (read with `pread`) into a new file `name`.
    static func copy(_ fd: Int32, bytes: Int, into dirfd: Int32, as name: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: bytes)
        guard bytes == 0 || PluginFileIO.readFully(fd, into: &buffer, at: 0) else { return false }
        return writeFile(dirfd, name, buffer)
    }

    /// The SHA-256 of the first `bytes` bytes of `fd`, read with `pread` in 1 MiB chunks.
    static func sha256(_ fd: Int32, bytes: Int) -> String? {
        guard let hasher = try? HostCrypto.SHA256Stream() else { return nil }
        var offset = 0
        while offset < bytes {
            let n = min(1 << 20, bytes - offset)
            var part = [UInt8](repeating: 0, count: n)
            guard PluginFileIO.readFully(fd, into: &part, at: offset) else { return nil }
            part.withUnsafeBytes { hasher.update($0) }
            offset += n
        }
        return HostCrypto.hex(hasher.finish())
    }
}

extension EddyServer {
    /// Writes a crash bundle for a worker that died or overran its deadline running `job`, and logs
    /// where (or why none was written). Nil-safe: a bundle that cannot be written costs nothing else.
    func keepCrashBundle(
        timedOut: Bool, cause: String, site: String?, job: EvalRequest.Job?, plugins: [LoadedPlugin]
    ) {
        let bundles = CrashBundles(directory: CrashBundles.defaultDirectory)
        let kind = CrashBundles.kind(cause: cause, timedOut: timedOut)
        switch bundles.write(kind: kind, cause: cause, site: site, job: job, plugins: plugins, options: options) {
        case .success(let path):
            logger.error(
                "crash bundle written",
                metadata: ["bundle": "\(PluginHost.escaped(path))", "kind": "\(kind)", "replay": "eddy replay \(path)"])
        case .failure(let e):
            logger.warning("crash bundle not written", metadata: ["why": "\(PluginHost.escaped(e.description))"])
        }
    }
}

/// A crash bundle as `eddy replay` reads it back (see ``CrashBundles``).
public struct CrashBundle: Sendable {
    public struct Build: Sendable {
        public var name: String
        public var version: String
        public var sha256: String
        /// The private copy's file name the server loaded it from.
        public var copy: String
    }

    public let path: String
    public let kind: String
    public let crashLine: String
    public let time: String
    public let plugins: [Build]
    /// The input to evaluate: the path the server opened, or the bundle's copy of an uploaded body.
    public let input: String
    public let inputSHA256: String?
    public let uploadTruncated: Bool
    public let inputFormat: String?
    /// How the request's batches were encoded (`auto`, `query`, `storage`); nil in bundles written
    /// before requests named it (the replay then encodes as `eddy eval` does by default).
    public let compression: String?
    /// What the bundle says of the goal when ``compression`` is nil: nothing (`missing`), or a value that
    /// is no goal (`unreadable`, shown escaped and cut short).
    public let compressionProblem: String?
    public let predicate: String?
    public let select: String?
    public let threads: Int
    public let evalTimeout: Double

    public struct Unreadable: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads `path/bundle.json` (at most 1 MiB), checking every field it uses.
    public init(path: String) throws(Unreadable) {
        self.path = path
        let file = path + "/bundle.json"
        let fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            throw Unreadable(description: "\(escapedForDisplay(file)): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        guard let facts = FileFacts(descriptor: fd), facts.isRegular, facts.size <= 1 << 20 else {
            throw Unreadable(description: "\(escapedForDisplay(file)): not a regular file of at most 1 MiB")
        }
        var bytes = [UInt8](repeating: 0, count: facts.size)
        guard PluginFileIO.readFully(fd, into: &bytes, at: 0),
            let record = try? JSONDecoder().decode(CrashBundleRecord.self, from: Data(bytes)),
            record.format == CrashBundleRecord.format
        else {
            throw Unreadable(
                description: "\(escapedForDisplay(file)): not an eddy crash bundle (format eddy-crash-bundle/1)")
        }
        let request = record.request ?? CrashBundleRecord.Request()
        let input = record.input ?? CrashBundleRecord.Input()
        kind = record.kind ?? "crash"
        crashLine = record.crashLine ?? ""
        time = record.time ?? ""
        plugins = (record.plugins ?? []).compactMap { p in
            guard let name = p.name, let hash = p.sha256, hash.count == 64 else { return nil }
            return Build(name: name, version: p.version ?? "", sha256: hash, copy: p.copy ?? "")
        }
        if input.uploaded == true {
            guard input.body == "input" else {
                throw Unreadable(description: "\(escapedForDisplay(file)): the uploaded body was not kept")
            }
            self.input = path + "/input"
        } else {
            guard let p = input.path, !p.isEmpty else {
                throw Unreadable(description: "\(escapedForDisplay(file)): the request names no input")
            }
            // Where the server opened it (absolute), when that file is still there; else the path as the
            // request named it (relative to the directory replay runs in).
            if let opened = input.openedPath, opened.hasPrefix("/"), access(opened, R_OK) == 0 {
                self.input = opened
            } else {
                self.input = p
            }
        }
        inputSHA256 = input.sha256
        uploadTruncated = input.bodyTruncated ?? false
        inputFormat = request.inputFormat
        predicate = request.where
        select = request.select
        threads = min(max(request.threads ?? 1, 1), 256)
        var goal: String?
        if case .string(let name) = request.compression { goal = name }
        compression = goal.flatMap { Compressor.Goal(named: $0) != nil ? $0 : nil }
        compressionProblem =
            compression != nil
            ? nil
            : request.compression.map { value in
                let shown = goal ?? String(decoding: ReplyJSON.encode(value), as: UTF8.self)
                return "unreadable: \(shortForDisplay(shown, limit: 64))"
            } ?? "missing"
        evalTimeout = min(max(request.evalTimeout ?? 30, 0.1), 3600)
    }

    /// The absolute path of the file open at `fd` (from /proc/self/fd), or nil.
    static func openedPath(_ fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.hasPrefix("/") && !text.hasSuffix(" (deleted)") ? text : nil
    }

    /// The SHA-256 of a regular file (following no link), or nil.
    public static func sha256(ofFile path: String) -> String? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let facts = FileFacts(descriptor: fd), facts.isRegular else { return nil }
        return CrashBundles.sha256(fd, bytes: facts.size)
    }

    /// `eddy eval` arguments that run the bundle's request over its input with the plugins in `pluginDir`
    /// (verification at load off: the request, not the check, is what is replayed; every build mapped
    /// whatever the input's size, as the server mapped them).
    /// Options as `--name=value` and the input after `--`: a bundle's values are the request's, and a
    /// path or an expression starting with `-` (`-fare < -10`, a file named `--no-confine`) must stay
    /// a value, never become an option.
    public func evalArguments(pluginDir: String) -> [String] {
        ["--format=json", "--plugin-dir=" + pluginDir, "--verify=off", "--plugin-min-rows=0", "--threads=\(threads)"]
            + (inputFormat.map { ["--input-format=" + $0] } ?? []) + (predicate.map { ["--where=" + $0] } ?? [])
            + (select.map { ["--select=" + $0] } ?? []) + (compression.map { ["--compression=" + $0] } ?? [])
            + ["--", input]
    }
}
