#if canImport(Glibc)
import Glibc
#endif

/// What the loader learns from a `.so` file without mapping or running it.
struct ELFFacts {
    var neededLibraries: [String] = []
    /// Dynamic symbols the file defines (not imports).
    var definedSymbols: Set<String> = []
}

/// Reads an ELF shared object from its bytes: header, program headers, dynamic section and dynamic
/// symbol table. Every offset is checked against the file size, so a truncated or hostile file is
/// refused here and never reaches `dlopen` (which dies with SIGBUS on a file cut inside a segment).
enum ELFInspector {
    struct Failure: Error {
        let check: String
        let expected: String
        let found: String
    }

    static func inspect(_ bytes: [UInt8]) throws -> ELFFacts {
        func fail(_ check: String, _ expected: String, _ found: String) -> Failure {
            Failure(check: check, expected: expected, found: found)
        }
        guard bytes.count >= 4, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            let shown = bytes.prefix(4).map { $0 >= 32 && $0 < 127 ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
            throw fail("ELF magic", "\\x7fELF", "'\(shown)' (not an ELF file)")
        }
        guard bytes.count >= 64 else { throw fail("ELF header", "at least 64 bytes", "\(bytes.count) bytes (truncated)") }
        guard bytes[4] == 2 else { throw fail("ELF class", "64-bit", bytes[4] == 1 ? "32-bit" : "class \(bytes[4])") }
        guard bytes[5] == 1 else { throw fail("byte order", "little-endian", "big-endian") }
        func u16(_ o: Int) throws -> Int {
            guard o >= 0, o + 2 <= bytes.count else { throw fail("file size", "offset \(o)+2 inside the file", "\(bytes.count) bytes") }
            return Int(bytes[o]) | Int(bytes[o + 1]) << 8
        }
        func u32(_ o: Int) throws -> Int {
            guard o >= 0, o + 4 <= bytes.count else { throw fail("file size", "offset \(o)+4 inside the file", "\(bytes.count) bytes") }
            return (0..<4).reduce(0) { $0 | Int(bytes[o + $1]) << (8 * $1) }
        }
        func u64(_ o: Int) throws -> Int {
            guard o >= 0, o + 8 <= bytes.count else { throw fail("file size", "offset \(o)+8 inside the file", "\(bytes.count) bytes") }
            let v = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[o + $1]) << (8 * UInt64($1)) }
            guard v <= UInt64(Int.max) else { throw fail("ELF field", "a sane offset", "\(v)") }
            return Int(v)
        }
        let type = try u16(16)
        guard type == 3 else { throw fail("ELF type", "shared object (ET_DYN)", type == 2 ? "executable" : type == 1 ? "relocatable object" : "type \(type)") }
        let machine = try u16(18)
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
        guard machine == hostMachine else { throw fail("machine", hostName, "e_machine \(machine)") }

        // Program headers: all inside the file, and every loadable segment's bytes too.
        let phoff = try u64(32)
        let phentsize = try u16(54)
        let phnum = try u16(56)
        guard phentsize == 56 else { throw fail("program header size", "56", "\(phentsize)") }
        guard phoff + phnum * phentsize <= bytes.count else {
            throw fail("program headers", "inside the file (end \(phoff + phnum * phentsize))", "file of \(bytes.count) bytes (truncated)")
        }
        var dynamicOffset = -1
        var dynamicSize = 0
        var loads: [(vaddr: Int, offset: Int, filesz: Int)] = []
        for k in 0..<phnum {
            let h = phoff + k * phentsize
            let pType = try u32(h)
            let offset = try u64(h + 8)
            let vaddr = try u64(h + 16)
            let filesz = try u64(h + 32)
            if pType == 1 {  // PT_LOAD
                guard offset + filesz <= bytes.count else {
                    throw fail("loadable segment \(k)", "bytes \(offset)..<\(offset + filesz) inside the file",
                               "file of \(bytes.count) bytes (truncated)")
                }
                loads.append((vaddr, offset, filesz))
            } else if pType == 2 {  // PT_DYNAMIC
                guard offset + filesz <= bytes.count else {
                    throw fail("dynamic segment", "inside the file", "file of \(bytes.count) bytes (truncated)")
                }
                dynamicOffset = offset
                dynamicSize = filesz
            }
        }
        guard dynamicOffset >= 0 else { throw fail("dynamic segment", "present", "none (not a dynamic library)") }
        func fileOffset(ofAddress a: Int) throws -> Int {
            for l in loads where a >= l.vaddr && a < l.vaddr + l.filesz { return a - l.vaddr + l.offset }
            throw fail("dynamic table address", "inside a loadable segment", "0x\(String(a, radix: 16))")
        }
        var strtab = -1, strsz = 0, symtab = -1, needed: [Int] = [], hashAddr = -1, gnuHashAddr = -1
        var k = dynamicOffset
        while k + 16 <= dynamicOffset + dynamicSize {
            let tag = try u64(k)
            let val = try u64(k + 8)
            switch tag {
            case 0: k = Int.max - 16
            case 1: needed.append(val)
            case 4: hashAddr = val
            case 5: strtab = try fileOffset(ofAddress: val)
            case 6: symtab = try fileOffset(ofAddress: val)
            case 10: strsz = val
            case 0x6fff_fef5: gnuHashAddr = val
            default: break
            }
            if k == Int.max - 16 { break }
            k += 16
        }
        guard strtab >= 0, symtab >= 0, strtab + strsz <= bytes.count else {
            throw fail("dynamic symbol table", "present and inside the file", "missing or truncated")
        }
        func string(_ o: Int) -> String {
            var e = strtab + o
            while e < strtab + strsz, bytes[e] != 0 { e += 1 }
            return String(decoding: bytes[(strtab + o)..<e], as: UTF8.self)
        }
        var facts = ELFFacts()
        facts.neededLibraries = needed.filter { $0 < strsz }.map(string)
        // Symbol count: DT_HASH gives it directly; otherwise the table runs up to the string table
        // (the usual layout), bounded by the file.
        var count = 0
        if hashAddr >= 0 {
            count = try u32(try fileOffset(ofAddress: hashAddr) + 4)
        } else if gnuHashAddr >= 0 || true {
            count = strtab > symtab ? (strtab - symtab) / 24 : 0
        }
        guard symtab + count * 24 <= bytes.count else {
            throw fail("dynamic symbol table", "inside the file", "file of \(bytes.count) bytes (truncated)")
        }
        for s in 0..<count {
            let e = symtab + s * 24
            let nameOffset = try u32(e)
            let shndx = try u16(e + 6)
            guard nameOffset < strsz, shndx != 0 else { continue }  // undefined: an import
            facts.definedSymbols.insert(string(nameOffset))
        }
        return facts
    }
}
