// Loads the delta example plugin (built against the unchanged SDK) into this host, whose SDK gained
// what a minor release may add, and checks that its kernels and compressor hook still run and agree
// with decode-then-compute. Usage: compat-host PLUGIN.so
@_spi(Host) import Eddy

#if canImport(Glibc)
    import Glibc
#endif

func fail(_ message: String) -> Never {
    print("compat-host: FAILED: \(message)")
    exit(1)
}

let arguments = CommandLine.arguments
guard arguments.count == 2 else { fail("usage: compat-host PLUGIN.so") }
guard let handle = dlopen(arguments[1], RTLD_NOW | RTLD_LOCAL) else {
    fail("dlopen: " + (dlerror().map { String(cString: $0) } ?? "unknown error"))
}
// One libEddy.so in the process, this host's: the plugin's dependency resolved to it by soname.
func mappedEddyLibraries() -> Set<String> {
    guard let f = fopen("/proc/self/maps", "r") else { return [] }
    defer { fclose(f) }
    var out = Set<String>()
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), f) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if let slash = text.firstIndex(of: "/"), text.hasSuffix("/libEddy.so\n") {
            out.insert(String(text[slash...].dropLast()))
        }
    }
    return out
}
let libraries = mappedEddyLibraries()
guard libraries.count == 1, libraries.first?.contains("/CompatHost/") == true else {
    fail("expected only this host's libEddy.so mapped, found \(libraries.sorted())")
}
typealias Entry = @convention(c) (Int32, UnsafeMutableRawPointer?) -> Int32
guard let symbol = dlsym(handle, PluginABI.entrySymbol) else { fail("no \(PluginABI.entrySymbol)") }
let entry = unsafeBitCast(symbol, to: Entry.self)
let buffer = UnsafeMutableRawPointer.allocate(byteCount: PluginABI.manifestCapacity, alignment: 8)
buffer.initializeMemory(as: UInt8.self, repeating: 0, count: PluginABI.manifestCapacity)
guard entry(PluginABI.manifestRequest, buffer) == 0 else { fail("manifest request") }
let manifest = String(cString: buffer.assumingMemoryBound(to: CChar.self))
var fields: [String: String] = [:]
for line in manifest.split(separator: "\n") {
    if let eq = line.firstIndex(of: "=") { fields[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
}
guard let abi = fields["abi"].flatMap(Int.init), PluginABI.supportedPluginABIs.contains(abi) else {
    fail("plugin ABI \(fields["abi"] ?? "none") not in \(PluginABI.supportedPluginABIs)")
}
let name = fields["name"] ?? ""
let version = fields["version"] ?? ""
let registrar = PluginRegistrar(owner: .plugin(name, version: version))
guard entry(PluginABI.registerRequest, Unmanaged.passUnretained(registrar).toOpaque()) == 0 else {
    fail("registration: \(registrar.failure ?? "?")")
}
let session = Session()
session.kernels.replace(
    pluginNamed: name, kernels: registrar.kernels, rules: registrar.rules, owner: registrar.owner,
    compressorHooks: registrar.compressorHooks)

// What the minor release added, used here so that this host really is built against it.
let ctx = session.makeContext()
guard ctx.minorReleaseBudget == Int.max, ctx.minorReleaseFunction() == 42 else { fail("minor-release additions") }

// The plugin's compressor hook picks its encoding; its kernels run on it and agree with decoding first.
let n = 20_000
let column = PrimitiveArray((0..<n).map { Int64(1_000 + 3 * $0) })
let encoded: any ArrayNode
do {
    encoded = try Compressor(hooks: registrar.compressorHooks).compress(column)
} catch {
    fail("compress: \(error)")
}
guard encoded.encoding.name == "ext.delta", encoded.minorReleaseNote == "" else {
    fail("expected ext.delta from the plugin's hook, got \(encoded.encoding)")
}
var fired: [String] = []
for query in [
    try CompareFunction.make(encoded, .lt, ConstantArray(.int64(31_000), count: n)),
    try CompareFunction.make(ConstantArray(.int64(40_003), count: n), .le, encoded),
    try AggregateFunction(.min).make(encoded), try AggregateFunction(.max).make(encoded),
] as [any ArrayNode] {
    do {
        let trace = ExecutionTrace()
        let fast = try session.makeContext(trace: trace).execute(query)
        let slow = try Session(builtins: false).makeContext(options: ExecutionOptions(useKernels: false)).execute(query)
        guard fast.count == slow.count, fast.dtype == slow.dtype,
            try (0..<fast.count).allSatisfy({ try fast.scalar(at: $0) == slow.scalar(at: $0) })
        else { fail("\(query.encoding): kernels and decode-then-compute differ") }
        fired += trace.events.filter { $0.owner.name == name }.map(\.name)
    } catch {
        fail("\(query.encoding): \(error)")
    }
}
guard fired.count >= 4 else { fail("the plugin's kernels did not fire: \(fired)") }
print(
    "compat-host: plugin \(name)@\(version) (SDK ABI \(abi)) ran in a host whose SDK gained a stored property in "
        + "DictArray and in ExecutionCtx, a defaulted ArrayNode requirement, an enum case and a function: "
        + "\(fired.count) kernel calls agreed with decode-then-compute")
