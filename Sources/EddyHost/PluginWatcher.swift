import CEddyHost
@_spi(Host) import Eddy
import EddyIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Something that happened to the plugin set of a watched directory.
public struct PluginEvent: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case added, replaced, removed, rejected, skipped, quarantined, directoryGone, directoryBack
    }
    public var kind: Kind
    public var file: String
    public var plugin: String
    public var version: String
    public var detail: String
    /// Registry generation after the event.
    public var generation: Int

    public var description: String {
        var s = "\(kind.rawValue) \(file)"
        if !plugin.isEmpty { s += " plugin=\(plugin)@\(version)" }
        if !detail.isEmpty { s += " (\(detail))" }
        return s + " generation=\(generation)"
    }
}

/// Watches a plugin directory with inotify and keeps the host's plugin set equal to the directory:
/// new files are loaded, rewritten files replace their plugin, deleted files withdraw their kernels.
///
/// Loads happen on `IN_CLOSE_WRITE` and `IN_MOVED_TO` (never `IN_CREATE`: the bytes are not written
/// yet), after a short debounce; a periodic rescan catches lost events. A changed file is loaded only
/// once it has settled: its own close or rename was seen, or two scans found it the same. A scan
/// triggered by another file therefore never loads one still being written (a half-written debug
/// build can already be a loadable ELF image). If the directory goes away the last good set keeps
/// serving, and it is picked up again when it comes back.
public final class PluginWatcher: Sendable {
    public let host: PluginHost
    public let directory: String
    public let debounceSeconds: Double
    public let rescanSeconds: Double
    private let onEvent: @Sendable (PluginEvent) -> Void
    private let stopFlag = Atomic<Bool>(false)
    private let rescanRequested = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)
    private let lastReport = Mutex<[PluginReportRow]>([])
    /// Signature (inode, size, mtime) of each file as last loaded, by path.
    private let seen = Mutex<[String: FileSignature]>([:])
    /// Changed files not loaded yet because they had not settled, with the signature last seen.
    private let unsettled = Mutex<[String: FileSignature]>([:])
    private let thread = Mutex<pthread_t?>(nil)

    struct FileSignature: Equatable, Sendable {
        var inode: UInt64
        var size: Int
        var mtimeSeconds: Int
        var mtimeNanos: Int
    }

    public init(
        host: PluginHost, directory: String, debounceSeconds: Double = 0.01, rescanSeconds: Double = 2,
        onEvent: @escaping @Sendable (PluginEvent) -> Void = { _ in }
    ) {
        self.host = host
        self.directory = directory
        self.debounceSeconds = debounceSeconds
        self.rescanSeconds = rescanSeconds
        self.onEvent = onEvent
    }

    /// The latest state of every file in the directory (loaded, skipped or rejected), for `/plugins`.
    public var report: [PluginReportRow] { lastReport.withLock { $0 } }

    /// Loads the directory once, then watches it on a background thread until ``stop()``.
    public func start() {
        reconcile()
        guard !running.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        pthread_create(
            &t, nil,
            { raw in
                let watcher = Unmanaged<PluginWatcher>.fromOpaque(raw!).takeRetainedValue()
                watcher.loop()
                return nil
            }, box)
        thread.withLock { $0 = t }
    }

    /// Loads `path` again at the next turn of the watching thread (after a quarantine, say), even if
    /// the file did not change.
    public func reload(_ path: String) {
        _ = seen.withLock { $0.removeValue(forKey: path) }
        rescanRequested.store(true, ordering: .releasing)
    }

    /// Stops watching (waits for the watching thread to finish).
    public func stop() {
        stopFlag.store(true, ordering: .releasing)
        if let t = thread.withLock({ $0 }) { pthread_join(t, nil) }
        running.store(false, ordering: .releasing)
    }

    private func loop() {
        var fd: Int32 = -1
        var watch: Int32 = -1
        var directoryPresent = true
        var dirty = false
        var dirtySince = 0.0
        var lastRescan = EddyIO.now()
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF)
        func attach() {
            if fd < 0 { fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
            watch = fd >= 0 ? inotify_add_watch(fd, directory, mask) : -1
        }
        attach()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        // Files closed after writing or renamed in since the last scan, with their signature then:
        // settled while they keep it.
        var settled: [String: FileSignature] = [:]
        var settleAll = false
        while !stopFlag.load(ordering: .acquiring) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let timeout = dirty ? Int32(max(1, debounceSeconds * 1000)) : 100
            let ready =
                fd >= 0
                ? poll(&pfd, 1, timeout)
                : {
                    usleep(100_000); return Int32(0)
                }()
            if ready > 0 {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                for (evMask, name) in Self.events(in: buffer, count: n) {
                    if evMask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) != 0 {
                        watch = -1
                        continue
                    }
                    if PluginHost.isCandidate(name) {
                        dirty = true
                        dirtySince = EddyIO.now()
                        if evMask & UInt32(IN_CLOSE_WRITE | IN_MOVED_TO) != 0 {
                            settled[name] = Self.signature(directory + "/" + name)
                        }
                    }
                }
            }
            if rescanRequested.exchange(false, ordering: .acquiringAndReleasing) {
                dirty = true
                dirtySince = 0
                settleAll = true
            }
            let now = EddyIO.now()
            // Directory gone: keep serving the last good set; look for it again on each rescan.
            if watch < 0,
                lookForDirectory(
                    present: &directoryPresent,
                    reattach: {
                        attach()
                        return watch >= 0
                    })
            {
                dirty = true
                dirtySince = 0
                settleAll = true
            }
            if dirty && now - dirtySince >= debounceSeconds {
                dirty = false
                reconcile(settled: settleAll ? nil : settled)
                settled = [:]
                settleAll = false
                lastRescan = now
            } else if now - lastRescan >= rescanSeconds {
                if directoryPresent { reconcile(settled: [:]) }
                lastRescan = now
            }
        }
        if fd >= 0 { close(fd) }
    }

    /// The inotify events in the first `n` bytes of `buffer`: each one's mask and file name.
    private static func events(in buffer: [UInt8], count n: Int) -> [(mask: UInt32, name: String)] {
        var events: [(mask: UInt32, name: String)] = []
        var offset = 0
        while n > 0 && offset + 16 <= n {
            let (evMask, nameLength) = buffer.withUnsafeBytes { raw in
                (
                    raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self),
                    Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                )
            }
            let nameBytes = buffer[(offset + 16)..<min(offset + 16 + nameLength, n)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            offset += 16 + nameLength
            events.append((evMask, name))
        }
        return events
    }

    /// With the directory's watch lost: notes the directory gone, or, when it is there again and
    /// `reattach` watches it, back (true: everything is to be scanned again).
    private func lookForDirectory(present directoryPresent: inout Bool, reattach: () -> Bool) -> Bool {
        var st = stat()
        let present = stat(directory, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        if directoryPresent && !present {
            directoryPresent = false
            emit(.directoryGone, directory, detail: "keeping the last good plugin set")
        }
        guard present, reattach() else { return false }
        if !directoryPresent { emit(.directoryBack, directory, detail: "") }
        directoryPresent = true
        return true
    }

    private func emit(
        _ kind: PluginEvent.Kind, _ file: String, plugin: String = "", version: String = "", detail: String
    ) {
        onEvent(
            PluginEvent(
                kind: kind, file: file, plugin: plugin, version: version, detail: detail,
                generation: host.session.kernels.generation))
    }

    /// A file's inode, size and modification time (following a link), or nil when it cannot be read.
    static func signature(_ path: String) -> FileSignature? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return FileSignature(
            inode: UInt64(st.st_ino), size: Int(st.st_size), mtimeSeconds: Int(st.st_mtim.tv_sec),
            mtimeNanos: Int(st.st_mtim.tv_nsec))
    }

    /// Brings the loaded set in line with the directory's files.
    public func reconcile() { reconcile(settled: nil) }

    /// ``reconcile()`` loading only settled files: those in `settled` (closed after writing or renamed
    /// in since the last scan) still with the signature they had then, or found with the same
    /// signature by the previous scan; nil counts every file as settled (the first scan, an explicit
    /// rescan).
    func reconcile(settled: [String: FileSignature]?) {
        var present: [String: FileSignature] = [:]
        var invalid: [String] = []
        if let dir = opendir(directory) {
            while let entry = readdir(dir) {
                let (name, valid) = withUnsafeBytes(of: entry.pointee.d_name) { PluginHost.entryName($0) }
                guard PluginHost.isCandidate(name) else { continue }
                let path = directory + "/" + name
                guard valid else {
                    invalid.append(path)
                    continue
                }
                guard let signature = Self.signature(path) else { continue }
                present[path] = signature
            }
            closedir(dir)
        } else {
            return  // directory gone: the loop reports it; nothing is unloaded
        }
        let previous = seen.withLock { $0 }
        var rows = lastReport.withLock { Dictionary(uniqueKeysWithValues: $0.map { ($0.file, $0) }) }
        // Removed files withdraw their plugin's kernels.
        for path in previous.keys where present[path] == nil {
            rows[path] = nil
            for p in host.plugins where p.file == path {
                host.unload(pluginNamed: p.name)
                emit(
                    .removed, path, plugin: p.name, version: p.version, detail: "kernels withdrawn; built-ins take over"
                )
            }
        }
        // New or rewritten files: load (a plugin already loaded from the same file name is replaced),
        // once settled; the others wait for their close event or the next scan.
        let waiting = unsettled.withLock { $0 }
        var stillWaiting: [String: FileSignature] = [:]
        var loadedNow = present
        for (path, signature) in present.sorted(by: { $0.key < $1.key }) where previous[path] != signature {
            let name = String(path.dropFirst(directory.count + 1))
            // Still open for writing somewhere: not yet. When that cannot be told (a file of another
            // user), a file is settled by its own close event or by two scans that agree.
            let writing = eddy_open_for_writing(path)
            if writing == 1
                || (writing < 0 && settled != nil && settled?[name] != signature && waiting[path] != signature)
            {
                stillWaiting[path] = signature
                loadedNow[path] = previous[path]
                continue
            }
            let row = host.load(path)
            rows[path] = row
            switch row.status {
            case .loaded where row.reason == "unchanged": break
            case .loaded: emit(.added, path, plugin: row.plugin, version: row.version, detail: "\(row.kernels) kernels")
            case .replaced: emit(.replaced, path, plugin: row.plugin, version: row.version, detail: row.reason)
            case .rejected: emit(.rejected, path, plugin: row.plugin, version: row.version, detail: row.reason)
            case .skipped: emit(.skipped, path, plugin: row.plugin, version: row.version, detail: row.reason)
            case .quarantined: emit(.quarantined, path, plugin: row.plugin, version: row.version, detail: row.reason)
            }
        }
        // Said once (in /plugins until the file goes), not on every scan.
        for path in invalid where rows[path]?.reason != PluginHost.invalidName {
            rows[path] = host.row(path, .rejected, PluginHost.invalidName)
            emit(.rejected, path, detail: PluginHost.invalidName)
        }
        for (path, row) in rows where row.reason == PluginHost.invalidName && !invalid.contains(path) {
            rows[path] = nil
        }
        seen.withLock { $0 = loadedNow }
        unsettled.withLock { $0 = stillWaiting }
        lastReport.withLock { $0 = rows.values.sorted { $0.file < $1.file } }
        // Copies of builds replaced, removed or quarantined go (once no process holds them).
        host.collectCopies()
    }
}
