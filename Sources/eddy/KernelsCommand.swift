import ArgumentParser
@_spi(Host) import Eddy

struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "List the kernel registry: per (parent, child) key, the kernels in the order they are tried."
    )

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        let session = Session()
        _ = try plugins.load(into: session)
        let snapshot = session.kernels.snapshot
        print("kernel registry, snapshot generation \(snapshot.generation)")
        for entry in snapshot.entries.sorted(by: { ($0.parent.name, $0.child.name) < ($1.parent.name, $1.child.name) })
        {
            print("\(entry.parent.name) ← \(entry.child.name)")
            for k in entry.kernels { print("  kernel \(k.name)  [\(k.owner)]") }
            for r in entry.rules { print("  rule   \(r.name)  [\(r.owner)]") }
        }
    }
}
