import Eddy
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Fixture: its kernel for `column > literal` returns at once (declines) but leaves something behind in
/// its worker, by literal:
/// - 101: a thread that crashes (SIGSEGV, outside any marked plugin call) as soon as its process is
///   busy again — with the next request, whoever sent it;
/// - 102: a thread that spins for ever;
/// - 103: a child process (`sleep`) in the worker's process group;
/// - 104: a child process in a session of its own (out of the worker's process group);
/// - 105: a thread that crashes a third of a second later (its worker idle by then);
/// - 106: a child process that spins, in a session of its own;
/// - 107: a child process (`sleep`) moved into its supervisor's process group;
/// - 109: a thread that crashes once another plugin's kernel is running (a file `q-running` in
///   `$EDDY_FIXTURE_PIDS` says so);
/// - 110: the kernel moves its worker into the supervisor's process group and loops (a kill of the
///   worker's own group then reaches nothing).
/// Built with `-D LINGER_OTHER` it is that other plugin, `lingering-other`, and does one thing only:
/// for 108 it creates `q-running` and runs for two seconds. Built with `-D LINGER_REGISTRATION`
/// it is `lingering-registration`, whose registration starts a thread that crashes 1.5 s later (its
/// kernel does nothing).
/// Children write their process ids into the directory `$EDDY_FIXTURE_PIDS` (one empty file each).
/// Built without the SDK package (`swiftc -emit-library`, see DESIGN.md §7).
enum LingeringKernelPlugin: EddyPlugin {
    #if LINGER_OTHER
        static let name = "lingering-other"
    #elseif LINGER_REGISTRATION
        static let name = "lingering-registration"
    #else
        static let name = "lingering-kernel"
    #endif
    static let version = "1.0.0"

    static func register(into registrar: PluginRegistrar) throws {
        #if LINGER_REGISTRATION
            startThread(crashLater)
        #endif
        registrar.register("linger on compare", parent: CompareFunction.id, child: ConstantArray.id) { _, child, _, _ in
            let literal: Int? =
                switch (child as? ConstantArray)?.scalar.value {
                case .int(let v)?: Int(v)
                case .float(let v)?: Int(exactly: v)
                default: nil
                }
            #if LINGER_OTHER
                if literal == 108 {
                    marker("q-running")
                    for _ in 0..<2_000 { usleep(1_000) }
                }
                return nil
            #endif
            if literal == 110 {
                setpgid(0, getpgid(getppid()))
                while true { usleep(1_000) }
            }
            // Once per process and literal, however many batches call the kernel.
            if let literal, (101...109).contains(literal),
                started.bitwiseOr(1 << (literal - 101), ordering: .relaxed).oldValue & 1 << (literal - 101) == 0
            {
                switch literal {
                case 101: startThread(crashWhenBusy)
                case 102: startThread(spin)
                case 103: spawnSleeper(newSession: false)
                case 104: spawnSleeper(newSession: true)
                case 105: startThread(crashSoon)
                case 106: spawnSleeper(newSession: true, spinning: true)
                case 107: spawnSleeper(newSession: false, group: getpgid(getppid()))
                case 109: startThread(crashWhenOtherRuns)
                default: break
                }
            }
            return nil
        }
    }
}

let started = Atomic<Int>(0)

func startThread(_ body: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?) {
    var thread = pthread_t()
    _ = pthread_create(&thread, nil, body, nil)
    pthread_detach(thread)
}

func cpuMilliseconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// Waits until the process has used 80 ms of CPU within half a second (another request is being
/// evaluated), then writes through a bad pointer.
func crashWhenBusy(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    var base = cpuMilliseconds()
    var ticks = 0
    while true {
        usleep(10_000)
        let now = cpuMilliseconds()
        if now - base > 80 { UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 } }
        ticks += 1
        if ticks % 50 == 0 { base = now }
    }
}

func crashLater(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    usleep(1_500_000)
    UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 }
    return nil
}

func crashSoon(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    usleep(300_000)
    UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 }
    return nil
}

func marker(_ name: String) {
    guard let dir = getenv("EDDY_FIXTURE_PIDS") else { return }
    let fd = open(String(cString: dir) + "/" + name, O_CREAT | O_WRONLY, 0o644)
    if fd >= 0 { close(fd) }
}

func crashWhenOtherRuns(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let path = getenv("EDDY_FIXTURE_PIDS").map { String(cString: $0) + "/q-running" } ?? "/nonexistent"
    while access(path, F_OK) != 0 { usleep(5_000) }
    usleep(50_000)  // well inside the other kernel's call
    UnsafeMutablePointer<Int>(bitPattern: 8).map { $0.pointee = 42 }
    return nil
}

func spin(_: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    while true { _ = getpid() }
}

func spawnSleeper(newSession: Bool, spinning: Bool = false, group: pid_t? = nil) {
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    if newSession { posix_spawnattr_setflags(&attributes, 0x80) }
    if let group {
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, group)
    }  // POSIX_SPAWN_SETSID (glibc), not imported
    var pid: pid_t = 0
    var args: [UnsafeMutablePointer<CChar>?] =
        spinning
        ? [strdup("sh"), strdup("-c"), strdup("while :; do :; done"), nil] : [strdup("sleep"), strdup("1000"), nil]
    _ = posix_spawn(&pid, spinning ? "/bin/sh" : "/bin/sleep", nil, &attributes, &args, environ)
    if let dir = getenv("EDDY_FIXTURE_PIDS") {
        let fd = open(String(cString: dir) + "/\(pid)", O_CREAT | O_WRONLY, 0o644)
        if fd >= 0 { close(fd) }
    }
}

@_cdecl("eddy_plugin_entry_v2")
public func eddyPluginEntry(_ request: Int32, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    pluginEntry(LingeringKernelPlugin.self, request, argument)
}
