/// Whether a plugin's Swift code was compiled without optimisation (a debug build), read from the
/// DWARF the compiler wrote into the file.
///
/// The signal: LLVM marks the compile-unit entry of every unit compiled with optimisation with the flag
/// `DW_AT_APPLE_optimized`, and Swift on Linux emits it (checked with swiftc 6.3.1: `-O`, `-Osize`, with
/// `-g` or `-gline-tables-only`, mark every Swift unit; `-Onone` marks none). Only units whose
/// `DW_AT_language` is Swift count: `swiftrt.o`, linked into every Swift library, is an optimised C unit
/// in a debug build too. `swift build` (debug) always writes DWARF; a file without any (built without
/// `-g`, or stripped) gives no answer rather than a guess. Symbols are no signal: `-enable-testing`,
/// which exports internal symbols, is a SwiftPM default, not a property of the code.
///
/// The file's bytes come from the plugin directory: every offset is range-checked, every count bounded,
/// and anything unexpected (compressed sections, 64-bit DWARF, an unknown attribute form) ends the
/// reading with no answer, never a trap.
enum ELFBuildMode {
    enum Answer: Equatable {
        /// `unoptimized` of the file's `swiftUnits` Swift compile units have no optimisation flag.
        case swift(units: Int, unoptimized: Int)
        /// No DWARF, no Swift unit, or DWARF this reader does not follow.
        case unknown

        /// At least one Swift unit was compiled without optimisation.
        var isDebugBuild: Bool {
            if case .swift(_, let unoptimized) = self { return unoptimized > 0 }
            return false
        }
    }

    static let languageSwift = 0x1E
    static let attributeLanguage = 0x13
    static let attributeAppleOptimized = 0x3FE1
    /// Far above any real plugin; bounds the work a crafted file can ask for.
    static let maxUnits = 1 << 20

    static func read(_ bytes: [UInt8]) -> Answer {
        bytes.withUnsafeBytes { raw in
            let r = Bytes(raw: raw)
            guard let (info, abbrev) = sections(r) else { return .unknown }
            return units(r, info: info, abbrev: abbrev) ?? .unknown
        }
    }

    /// Bounds-checked little-endian reads; nil when a read leaves the file.
    struct Bytes {
        let raw: UnsafeRawBufferPointer

        func int(_ at: Int, _ width: Int) -> Int? {
            guard at >= 0, width <= raw.count, at <= raw.count - width else { return nil }
            var v: UInt64 = 0
            for k in 0..<width { v |= UInt64(raw[at + k]) << UInt64(8 * k) }
            return v > UInt64(Int.max) ? nil : Int(v)
        }

        /// An unsigned LEB128 number at `at` and the offset after it (values past 63 bits are refused).
        func uleb(_ at: Int) -> (Int, Int)? {
            var v = 0
            var shift = 0
            var p = at
            while p >= 0, p < raw.count {
                let b = Int(raw[p])
                p += 1
                if shift > 56 && (b & 0x7F) >> (63 - shift) != 0 { return nil }
                v |= (b & 0x7F) << shift
                if b & 0x80 == 0 { return (v, p) }
                shift += 7
                if shift > 63 { return nil }
            }
            return nil
        }

        /// The offset after a signed LEB128 number at `at`.
        func skipLEB(_ at: Int) -> Int? {
            var p = at
            while p >= 0, p < raw.count, p - at < 10 {
                let b = raw[p]
                p += 1
                if b & 0x80 == 0 { return p }
            }
            return nil
        }
    }

    /// The file ranges of `.debug_info` and `.debug_abbrev`, when both are there, uncompressed.
    static func sections(_ r: Bytes) -> (info: Range<Int>, abbrev: Range<Int>)? {
        guard r.int(4, 1) == 2, r.int(5, 1) == 1,  // ELF64, little-endian
            let shoff = r.int(0x28, 8), let entsize = r.int(0x3A, 2), let shnum = r.int(0x3C, 2),
            let shstrndx = r.int(0x3E, 2), entsize >= 64, shnum > 0, shstrndx < shnum,
            shoff <= r.raw.count, shnum <= (r.raw.count - shoff) / entsize
        else { return nil }
        func header(_ k: Int) -> (name: Int, flags: Int, range: Range<Int>)? {
            let h = shoff + k * entsize
            guard let name = r.int(h, 4), let flags = r.int(h + 8, 8), let offset = r.int(h + 24, 8),
                let size = r.int(h + 32, 8), offset <= r.raw.count, size <= r.raw.count - offset
            else { return nil }
            return (name, flags, offset..<(offset + size))
        }
        guard let names = header(shstrndx)?.range else { return nil }
        func name(_ at: Int) -> String? {
            guard at >= 0, at < names.count else { return nil }
            var end = names.lowerBound + at
            while end < names.upperBound, r.raw[end] != 0, end - names.lowerBound - at < 64 { end += 1 }
            return String(
                decoding: UnsafeRawBufferPointer(rebasing: r.raw[(names.lowerBound + at)..<end]), as: UTF8.self)
        }
        var info: Range<Int>?
        var abbrev: Range<Int>?
        let compressed = 0x800  // SHF_COMPRESSED
        for k in 0..<shnum {
            guard let h = header(k) else { return nil }
            switch name(h.name) {
            case ".debug_info": info = h.flags & compressed == 0 ? h.range : nil
            case ".debug_abbrev": abbrev = h.flags & compressed == 0 ? h.range : nil
            default: break
            }
        }
        guard let info, let abbrev else { return nil }
        return (info, abbrev)
    }

    /// Walks the compile units of `.debug_info`, reading each one's first entry (the unit itself).
    static func units(_ r: Bytes, info: Range<Int>, abbrev: Range<Int>) -> Answer? {
        var swiftUnits = 0
        var unoptimized = 0
        var at = info.lowerBound
        var seen = 0
        while at < info.upperBound {
            seen += 1
            guard seen <= maxUnits, let length = r.int(at, 4), length < 0xFFFF_FFF0,  // 64-bit DWARF: no answer
                length <= info.upperBound - at - 4, let version = r.int(at + 4, 2)
            else { return nil }
            let end = at + 4 + length
            var die: Int
            let abbrevOffset: Int
            let addressSize: Int
            switch version {
            case 5:
                guard let type = r.int(at + 6, 1), let size = r.int(at + 7, 1), let a = r.int(at + 8, 4) else {
                    return nil
                }
                (addressSize, abbrevOffset) = (size, a)
                die = at + 12 + (type == 4 || type == 5 ? 8 : 0) + (type == 2 || type == 6 ? 12 : 0)
            case 2...4:
                guard let a = r.int(at + 6, 4), let size = r.int(at + 10, 1) else { return nil }
                (addressSize, abbrevOffset) = (size, a)
                die = at + 11
            default:
                return nil
            }
            guard let (code, next) = r.uleb(die), next <= end else { return nil }
            die = next
            if code != 0 {
                guard abbrevOffset < abbrev.count,
                    let attributes = abbreviation(r, code, from: abbrev.lowerBound + abbrevOffset, within: abbrev),
                    let unit = unitFlags(r, attributes, at: die, end: end, version: version, addressSize: addressSize)
                else { return nil }
                if unit.language == languageSwift {
                    swiftUnits += 1
                    if !unit.optimized { unoptimized += 1 }
                }
            }
            at = end
        }
        return swiftUnits > 0 ? .swift(units: swiftUnits, unoptimized: unoptimized) : .unknown
    }

    typealias Attribute = (name: Int, form: Int, implicitConst: Int?)

    /// The attribute list of abbreviation `code` in the table starting at `start`.
    static func abbreviation(_ r: Bytes, _ code: Int, from start: Int, within table: Range<Int>) -> [Attribute]? {
        var p = start
        var entries = 0
        while p < table.upperBound, entries < 1 << 16 {
            entries += 1
            guard let (c, afterCode) = r.uleb(p) else { return nil }
            if c == 0 { return nil }  // the end of the table: no such code
            guard let (_, afterTag) = r.uleb(afterCode), afterTag < table.upperBound else { return nil }
            p = afterTag + 1  // the children flag
            var attributes: [Attribute] = []
            while true {
                guard let (name, a) = r.uleb(p), let (form, b) = r.uleb(a), b <= table.upperBound,
                    attributes.count < 1 << 10
                else { return nil }
                p = b
                if name == 0 && form == 0 { break }
                var implicitConst: Int?
                if form == 0x21 {
                    guard let after = r.skipLEB(p) else { return nil }
                    implicitConst = r.uleb(p)?.0
                    p = after
                }
                attributes.append((name, form, implicitConst))
            }
            if c == code { return attributes }
        }
        return nil
    }

    /// The language and optimisation flag of a unit entry whose attributes start at `at`.
    static func unitFlags(
        _ r: Bytes, _ attributes: [Attribute], at start: Int, end: Int, version: Int, addressSize: Int
    ) -> (language: Int?, optimized: Bool)? {
        var p = start
        var language: Int?
        var optimized = false
        for attribute in attributes {
            var form = attribute.form
            if form == 0x16 {  // DW_FORM_indirect: the form is in the entry
                guard let (f, next) = r.uleb(p) else { return nil }
                (form, p) = (f, next)
            }
            let valueStart = p
            guard let next = skip(r, form: form, at: p, version: version, addressSize: addressSize), next <= end else {
                return nil
            }
            p = next
            switch attribute.name {
            case attributeLanguage:
                switch form {
                case 0x0B, 0x05, 0x06, 0x07: language = r.int(valueStart, next - valueStart)
                case 0x0F: language = r.uleb(valueStart)?.0
                case 0x21: language = attribute.implicitConst
                default: break
                }
            case attributeAppleOptimized:
                optimized = form == 0x19 || (form == 0x0C && r.int(valueStart, 1) != 0)
            default: break
            }
        }
        return (language, optimized)
    }

    /// The offset after a value of `form` at `at` (32-bit DWARF), nil for a form this reader does not know.
    static func skip(_ r: Bytes, form: Int, at p: Int, version: Int, addressSize: Int) -> Int? {
        func fixed(_ n: Int) -> Int? { p <= r.raw.count - n ? p + n : nil }
        func counted(_ width: Int) -> Int? {
            guard let n = r.int(p, width), n <= r.raw.count - p - width else { return nil }
            return p + width + n
        }
        func ulebCounted() -> Int? {
            guard let (n, after) = r.uleb(p), n <= r.raw.count - after else { return nil }
            return after + n
        }
        switch form {
        case 0x19, 0x21: return p  // flag_present, implicit_const
        case 0x0B, 0x0C, 0x11, 0x25, 0x29: return fixed(1)
        case 0x05, 0x12, 0x26, 0x2A: return fixed(2)
        case 0x27, 0x2B: return fixed(3)
        case 0x06, 0x0E, 0x13, 0x17, 0x1C, 0x1D, 0x1F, 0x28, 0x2C, 0x1F20, 0x1F21: return fixed(4)
        case 0x07, 0x14, 0x20, 0x24: return fixed(8)
        case 0x1E: return fixed(16)
        case 0x01: return fixed(addressSize)
        case 0x10: return fixed(version <= 2 ? addressSize : 4)
        case 0x0D: return r.skipLEB(p)
        case 0x0F, 0x15, 0x1A, 0x1B, 0x22, 0x23, 0x1F01, 0x1F02: return r.uleb(p)?.1
        case 0x08:
            var e = p
            while e < r.raw.count, r.raw[e] != 0 { e += 1 }
            return e < r.raw.count ? e + 1 : nil
        case 0x0A: return counted(1)
        case 0x03: return counted(2)
        case 0x04: return counted(4)
        case 0x09, 0x18: return ulebCounted()
        default: return nil
        }
    }
}
