/// What the loader learns from a `.so` file without mapping or running it.
struct ELFFacts {
    var neededLibraries: [String] = []
    /// Which of the names asked about the file defines (not imports) as dynamic symbols.
    var definedSymbols: Set<String> = []
    /// Defined symbols that start with the prefix asked about, and the first of them.
    var prefixedSymbolCount = 0
    var prefixedExample = ""
}

/// Reads an ELF shared object from its bytes: header, program headers, dynamic section and dynamic
/// symbol table. Every offset and count comes from the file, so each is range-checked with
/// overflow-checked arithmetic: a truncated or hostile file is refused here with the check that
/// failed, never a trap, and never reaches `dlopen` (which dies with SIGBUS on a file cut inside a
/// segment).
enum ELFInspector {
    struct Failure: Error, Equatable {
        let check: String
        let expected: String
        let found: String
    }

    /// Size of the ELF64 file header: enough to check the magic, class and type before reading more.
    static let headerSize = 64
    /// Upper bounds on table sizes, far above any real plugin, so a crafted count cannot make the
    /// checks themselves slow.
    static let maxDynamicEntries = 1 << 16
    static let maxSymbols = 1 << 22

    /// Checks the first bytes of a file (at least the magic): fails fast on anything that is not an
    /// ELF file, before the rest is read.
    static func checkMagic(_ prefix: [UInt8]) throws(Failure) {
        guard prefix.count >= 4, prefix[0] == 0x7F, prefix[1] == 0x45, prefix[2] == 0x4C, prefix[3] == 0x46 else {
            let shown = prefix.prefix(4).map {
                $0 >= 32 && $0 < 127 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16)
            }
            .joined()
            throw Failure(check: "ELF magic", expected: "\\x7fELF", found: "'\(shown)' (not an ELF file)")
        }
    }

    /// Checks the file and looks up the defined symbols named in `symbols`, and those that start with
    /// `prefix`. Each symbol name is compared, never copied whole, so a crafted table whose names run
    /// for megabytes costs no more than a normal one (bounded by `maxNameBytes` per name).
    static func inspect(_ bytes: [UInt8], symbols: Set<String> = [], prefix: String = "") throws -> ELFFacts {
        try bytes.withUnsafeBytes { try inspect(Reader(bytes: $0), symbols: symbols, prefix: prefix) }
    }

    /// The longest symbol or library name read in full; longer ones are cut for messages.
    static let maxNameBytes = 256

    /// Bounds-checked little-endian reads over the file's bytes.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var count: Int { bytes.count }

        func fail(_ check: String, _ expected: String, _ found: String) -> Failure {
            Failure(check: check, expected: expected, found: found)
        }

        /// `a + b`, or a failure naming `what` when it overflows.
        func add(_ a: Int, _ b: Int, _ what: String) throws -> Int {
            let (s, o) = a.addingReportingOverflow(b)
            guard !o else { throw fail(what, "an offset that fits in 64 bits", "\(a) + \(b) overflows") }
            return s
        }

        func multiply(_ a: Int, _ b: Int, _ what: String) throws -> Int {
            let (p, o) = a.multipliedReportingOverflow(by: b)
            guard !o else { throw fail(what, "a size that fits in 64 bits", "\(a) × \(b) overflows") }
            return p
        }

        /// Checks that `length` bytes at `offset` lie inside the file and returns where they end.
        @discardableResult
        func within(_ offset: Int, _ length: Int, _ what: String) throws -> Int {
            guard offset >= 0, length >= 0 else {
                throw fail(what, "a non-negative offset and size", "\(offset), \(length)")
            }
            let end = try add(offset, length, what)
            guard end <= count else {
                throw fail(what, "bytes \(offset)..<\(end) inside the file", "file of \(count) bytes (truncated)")
            }
            return end
        }

        func u16(_ o: Int, _ what: String = "file size") throws -> Int {
            try within(o, 2, what)
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8
        }

        func u32(_ o: Int, _ what: String = "file size") throws -> Int {
            try within(o, 4, what)
            return Int(bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian)
        }

        /// A 64-bit field used as an offset, address or size: refused past `Int.max`.
        func u64(_ o: Int, _ what: String = "file size") throws -> Int {
            try within(o, 8, what)
            let v = bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian
            guard v <= UInt64(Int.max) else { throw fail(what, "a value below 2^63", "\(v)") }
            return Int(v)
        }
    }

    static func inspect(_ r: Reader, symbols: Set<String>, prefix: String) throws -> ELFFacts {
        try checkHeader(r)
        let segments = try programHeaders(r)
        let dynamic = try dynamicEntries(r, segments)
        return try symbolFacts(r, segments, dynamic, symbols: symbols, prefix: prefix)
    }

    /// Where the loadable segments and the dynamic segment are, from the program headers.
    struct Segments {
        var dynamicOffset = -1
        var dynamicSize = 0
        var loads: [(vaddr: Int, vend: Int, offset: Int)] = []

        func fileOffset(ofAddress a: Int, _ what: String, _ r: Reader) throws -> Int {
            for l in loads where a >= l.vaddr && a < l.vend { return a - l.vaddr + l.offset }
            throw r.fail(what, "an address inside a loadable segment", "0x\(String(a, radix: 16))")
        }
    }

    /// What the dynamic segment says: the string and symbol tables (file offsets), the needed
    /// libraries (string table offsets) and the hash table's address (-1 when absent).
    struct DynamicEntries {
        var strtab = -1
        var strsz = 0
        var symtab = -1
        var needed: [Int] = []
        var hashAddr = -1
    }

    /// The ELF header: magic, 64-bit, little-endian, a shared object, for this machine.
    static func checkHeader(_ r: Reader) throws {
        try checkMagic(Array(r.bytes.prefix(4)))
        guard r.count >= headerSize else {
            throw r.fail("ELF header", "at least \(headerSize) bytes", "\(r.count) bytes (truncated)")
        }
        guard r.bytes[4] == 2 else {
            throw r.fail("ELF class", "64-bit", r.bytes[4] == 1 ? "32-bit" : "class \(r.bytes[4])")
        }
        guard r.bytes[5] == 1 else {
            throw r.fail("byte order", "little-endian", r.bytes[5] == 2 ? "big-endian" : "\(r.bytes[5])")
        }
        let type = try r.u16(16)
        guard type == 3 else {
            throw r.fail(
                "ELF type", "shared object (ET_DYN)",
                type == 2 ? "executable" : type == 1 ? "relocatable object" : "type \(type)")
        }
        let machine = try r.u16(18)
        #if arch(x86_64)
            let hostMachine = 62
            let hostName = "x86-64"
        #elseif arch(arm64)
            let hostMachine = 183
            let hostName = "aarch64"
        #else
            let hostMachine = machine
            let hostName = "this machine"
        #endif
        guard machine == hostMachine else { throw r.fail("machine", hostName, "e_machine \(machine)") }
    }

    /// The program headers, all inside the file, and every loadable segment's bytes too.
    static func programHeaders(_ r: Reader) throws -> Segments {
        let phoff = try r.u64(32, "program header offset")
        let phentsize = try r.u16(54)
        let phnum = try r.u16(56)
        guard phentsize == 56 else { throw r.fail("program header size", "56", "\(phentsize)") }
        let tableSize = try r.multiply(phnum, phentsize, "program headers")
        try r.within(phoff, tableSize, "program headers")
        var segments = Segments()
        for k in 0..<phnum {
            let h = phoff + k * phentsize  // inside the table checked above
            let pType = try r.u32(h)
            let offset = try r.u64(h + 8, "program header \(k) offset")
            let vaddr = try r.u64(h + 16, "program header \(k) address")
            let filesz = try r.u64(h + 32, "program header \(k) size")
            if pType == 1 {  // PT_LOAD
                try r.within(offset, filesz, "loadable segment \(k)")
                segments.loads.append((vaddr, try r.add(vaddr, filesz, "loadable segment \(k) address"), offset))
            } else if pType == 2 {  // PT_DYNAMIC
                try r.within(offset, filesz, "dynamic segment")
                segments.dynamicOffset = offset
                segments.dynamicSize = filesz
            }
        }
        guard segments.dynamicOffset >= 0 else {
            throw r.fail("dynamic segment", "present", "none (not a dynamic library)")
        }
        return segments
    }

    /// The dynamic segment's entries, bounded by ``maxDynamicEntries``.
    static func dynamicEntries(_ r: Reader, _ segments: Segments) throws -> DynamicEntries {
        var d = DynamicEntries()
        let dynamicEnd = segments.dynamicOffset + segments.dynamicSize  // checked by `within` in programHeaders
        var k = segments.dynamicOffset
        var entries = 0
        scan: while k + 16 <= dynamicEnd {
            entries += 1
            guard entries <= maxDynamicEntries else {
                throw r.fail("dynamic table", "at most \(maxDynamicEntries) entries", "more")
            }
            let tag = try r.u64(k, "dynamic entry")
            let val = try r.u64(k + 8, "dynamic entry")
            switch tag {
            case 0: break scan  // DT_NULL
            case 1: d.needed.append(val)  // DT_NEEDED
            case 4: d.hashAddr = val  // DT_HASH
            case 5: d.strtab = try segments.fileOffset(ofAddress: val, "string table address", r)  // DT_STRTAB
            case 6: d.symtab = try segments.fileOffset(ofAddress: val, "symbol table address", r)  // DT_SYMTAB
            case 10: d.strsz = val  // DT_STRSZ
            default: break
            }
            k += 16
        }
        guard d.strtab >= 0, d.symtab >= 0 else {
            throw r.fail("dynamic symbol table", "present", "no DT_STRTAB or DT_SYMTAB entry")
        }
        return d
    }

    /// The needed libraries, and the defined symbols asked about, read from the dynamic tables.
    static func symbolFacts(
        _ r: Reader, _ segments: Segments, _ d: DynamicEntries, symbols: Set<String>, prefix: String
    ) throws -> ELFFacts {
        let (strtab, strsz, symtab, needed, hashAddr) = (d.strtab, d.strsz, d.symtab, d.needed, d.hashAddr)
        let strEnd = try r.within(strtab, strsz, "dynamic string table")
        /// The name at `o`, read up to `limit` bytes (never to the end of a table without a NUL).
        func string(_ o: Int, limit: Int = maxNameBytes) -> String? {
            guard o >= 0, o < strsz else { return nil }
            let start = strtab + o
            let end = min(strEnd, start + limit)
            var e = start
            while e < end, r.bytes[e] != 0 { e += 1 }
            return String(decoding: UnsafeRawBufferPointer(rebasing: r.bytes[start..<e]), as: UTF8.self)
        }
        /// Whether the NUL-terminated name at `o` begins with `bytes` (and, if `exact`, is exactly it).
        func matches(_ o: Int, _ bytes: [UInt8], exact: Bool) -> Bool {
            guard o >= 0, o < strsz else { return false }
            let start = strtab + o
            guard start + bytes.count + (exact ? 1 : 0) <= strEnd else { return false }
            for (k, b) in bytes.enumerated() where r.bytes[start + k] != b { return false }
            return !exact || r.bytes[start + bytes.count] == 0
        }
        var facts = ELFFacts()
        facts.neededLibraries = needed.compactMap { string($0) }
        // Symbol count: DT_HASH gives it directly; otherwise the table runs up to the string table
        // (the usual layout), bounded by the file.
        var count = strtab > symtab ? (strtab - symtab) / 24 : 0
        if hashAddr >= 0 {
            count = try r.u32(
                try r.add(try segments.fileOffset(ofAddress: hashAddr, "hash table address", r), 4, "hash table"))
        }
        guard count <= maxSymbols else { throw r.fail("dynamic symbol count", "at most \(maxSymbols)", "\(count)") }
        try r.within(symtab, try r.multiply(count, 24, "dynamic symbol table"), "dynamic symbol table")
        let wanted = symbols.map { ($0, Array($0.utf8)) }
        let prefixBytes = Array(prefix.utf8)
        for s in 0..<count {
            let e = symtab + s * 24
            let nameOffset = try r.u32(e)
            let shndx = try r.u16(e + 6)
            guard shndx != 0 else { continue }  // undefined: an import
            for (name, bytes) in wanted where matches(nameOffset, bytes, exact: true) {
                facts.definedSymbols.insert(name)
            }
            if !prefixBytes.isEmpty, matches(nameOffset, prefixBytes, exact: false) {
                if facts.prefixedSymbolCount == 0 { facts.prefixedExample = string(nameOffset) ?? "" }
                facts.prefixedSymbolCount += 1
            }
        }
        return facts
    }
}
