@_spi(Host) public import Eddy

/// Output formats of results.
public enum OutputFormat: String, Sendable, CaseIterable {
    case table, csv, json
}

/// Writes result batches in one format to a text sink.
public final class ResultWriter {
    public let format: OutputFormat
    private let names: [String]
    private let emit: (String) -> Void
    private var tableRows: [[String]] = []
    private var rowsWritten = 0
    /// Table cells longer than this are cut with an ellipsis.
    public var maxCellWidth = 40

    /// - Parameter emit: receives the output text piece by piece.
    public init(format: OutputFormat, names: [String], emit: @escaping (String) -> Void) {
        self.format = format
        self.names = names
        self.emit = emit
    }

    /// Results as an Arrow IPC stream (`--format arrow`): batches go to `arrow`, not to text.
    private var arrow: ArrowStreamWriter?

    /// A writer whose batches become record batches of an Arrow IPC stream.
    public convenience init(arrow: ArrowStreamWriter, names: [String]) {
        self.init(format: .csv, names: names) { _ in }
        self.arrow = arrow
    }

    private var started = false

    /// The header, written with the first rows (or at the end), so that a failed run prints nothing.
    private func start() {
        guard !started else { return }
        started = true
        switch format {
        case .csv: emit(names.map(Self.csvField).joined(separator: ",") + "\n")
        case .json: emit("[")
        case .table: break
        }
    }

    /// Writes rows of canonical (or constant) columns.
    public func write(_ columns: [any ArrayNode]) throws {
        if let arrow {
            try arrow.write(columns)
            return
        }
        start()
        if format == .csv || format == .json {
            try writeBytes(columns, json: format == .json)
            return
        }
        // A table: cells kept until `finish` knows the widths.
        let n = columns.first?.count ?? 0
        for i in 0..<n {
            let row = try columns.map { try $0.scalar(at: i) }
            tableRows.append(row.map { $0.isNull ? "null" : Self.plain($0) })
            rowsWritten += 1
        }
    }

    /// Ends the output (the table is printed here, once widths are known).
    public func finish() {
        if let arrow {
            arrow.finish()
            return
        }
        start()
        switch format {
        case .csv: break
        case .json: emit(rowsWritten == 0 ? "]\n" : "\n]\n")
        case .table:
            func cut(_ s: String) -> String {
                // For a terminal: line breaks become spaces, other control characters are shown
                // escaped (a value holding ESC [31m must not recolour the screen).
                let clean = escapedForDisplay(s.replacingNewlines)
                return clean.count > maxCellWidth ? String(clean.prefix(maxCellWidth - 1)) + "…" : clean
            }
            let cells = tableRows.map { $0.map(cut) }
            let header = names.map(cut)
            var widths = header.map(\.count)
            for r in cells { for (k, c) in r.enumerated() { widths[k] = Swift.max(widths[k], c.count) } }
            func line(_ r: [String]) -> String {
                zip(r, widths).map { $0 + String(repeating: " ", count: $1 - $0.count) }.joined(separator: " │ ")
                    .trailingSpacesRemoved
            }
            emit(line(header) + "\n")
            emit(widths.map { String(repeating: "─", count: $0) }.joined(separator: "─┼─") + "\n")
            for r in cells { emit(line(r) + "\n") }
            emit("(\(rowsWritten) row\(rowsWritten == 1 ? "" : "s"))\n")
        }
    }

    static func plain(_ s: Scalar) -> String {
        switch s.value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let v): String(v)
        case .uint(let v): String(v)
        case .float(let d): s.dtype.ptype == .float32 ? String(Float(d)) : String(d)
        case .utf8(let t): t
        case .binary(let b): "0x" + b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        case .struct: s.value.description
        @unknown default: s.value.description
        }
    }

    /// A CSV field: quoted (quotes doubled) when empty or holding a comma, a quote, CR or LF — by
    /// bytes, so a CRLF (one Character) is quoted too.
    static func csvField(_ s: String) -> String {
        var out: [UInt8] = []
        appendCSVField(Array(s.utf8), to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    static func appendCSVField(_ field: some Collection<UInt8>, to out: inout [UInt8]) {
        if field.isEmpty {
            out.append(contentsOf: [0x22, 0x22])
            return
        }
        guard field.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else {
            out.append(contentsOf: field)
            return
        }
        out.append(0x22)
        for b in field {
            out.append(b)
            if b == 0x22 { out.append(0x22) }
        }
        out.append(0x22)
    }

    /// How one column's cells are written: straight from its buffers for i64 and utf8, else through
    /// its scalars. Only pointers into buffers the batch's columns own (kept alive while rows are
    /// written), so reading a cell retains nothing: an enum with arrays and bitmaps in it was copied,
    /// retained and released for every cell, a third of the time of writing rows.
    private struct CellSource {
        enum Kind { case int64, utf8, other }
        var kind: Kind
        /// i64: the values.
        var values: UnsafePointer<Int64>? = nil
        /// utf8: the offsets and the bytes.
        var offsets: UnsafePointer<Int32>? = nil
        var bytes: UnsafeRawPointer? = nil
        /// Validity as bits (nil: every cell valid, unless `allInvalid`).
        var validBits: UnsafeRawPointer? = nil
        var validOffset = 0
        var allInvalid = false

        /// Nil for a validity this build does not know (its cells go through scalars).
        init?(kind: Kind, validity: Validity) {
            self.kind = kind
            switch validity {
            case .allValid: break
            case .allInvalid: allInvalid = true
            case .bitmap(let b):
                validBits = b.buffer.baseAddress
                validOffset = b.offset
            @unknown default: return nil
            }
        }

        static var other: CellSource { CellSource(kind: .other) }

        private init(kind: Kind) { self.kind = kind }

        @inline(__always) func isValid(_ i: Int) -> Bool {
            guard let validBits else { return !allInvalid }
            let bit = validOffset &+ i
            return (validBits.load(fromByteOffset: bit >> 3, as: UInt8.self) >> UInt8(bit & 7)) & 1 == 1
        }
    }

    /// CSV or JSON rows of a batch, built as bytes and emitted once: i64 and utf8 cells straight from
    /// their buffers, others through their scalars.
    private func writeBytes(_ columns: [any ArrayNode], json: Bool) throws {
        let n = columns.first?.count ?? 0
        guard n > 0 else { return }
        let sources = Self.cellSources(columns, rows: n)
        // JSON: `"name": ` before each cell; a null is `null` (in CSV, an empty field).
        let keys =
            json
            ? names.enumerated().map { k, name in Array(((k == 0 ? "" : ", ") + Self.jsonString(name) + ": ").utf8) }
            : []
        let null: [UInt8] = json ? Array("null".utf8) : []
        let (firstRow, nextRow) = (Array("\n  {".utf8), Array(",\n  {".utf8))
        var out: [UInt8] = []
        out.reserveCapacity(n * (json ? 16 : 8) * Swift.max(1, columns.count))
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: an Int64 has at most 20 digits
        try withExtendedLifetime(columns) {
            try sources.withUnsafeBufferPointer { sources in
                for i in 0..<n {
                    if json { out.append(contentsOf: rowsWritten + i == 0 ? firstRow : nextRow) }
                    for k in 0..<sources.count {
                        if json {
                            if k < keys.count { out.append(contentsOf: keys[k]) }
                        } else if k > 0 {
                            out.append(0x2C)
                        }
                        let source = sources[k]
                        guard source.kind == .other || source.isValid(i) else {
                            out.append(contentsOf: null)
                            continue
                        }
                        switch source.kind {
                        case .int64:
                            guard let values = source.values else { continue }
                            let v = values[i]
                            var m = v.magnitude
                            withUnsafeMutableBytes(of: &digits) { d in
                                var at = d.count
                                repeat {
                                    at -= 1
                                    d[at] = UInt8(truncatingIfNeeded: m % 10) + 0x30
                                    m /= 10
                                } while m > 0
                                if v < 0 { out.append(0x2D) }
                                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[at...]))
                            }
                        case .utf8:
                            guard let offsets = source.offsets, let bytes = source.bytes else { continue }
                            let start = Int(offsets[i])
                            let field = UnsafeRawBufferPointer(start: bytes + start, count: Int(offsets[i + 1]) - start)
                            if json {
                                Self.appendJSONString(field, to: &out)
                            } else {
                                Self.appendCSVField(field, to: &out)
                            }
                        case .other:
                            let cell = try columns[k].scalar(at: i)
                            if json {
                                out.append(contentsOf: Self.json(cell).utf8)
                            } else if !cell.isNull {
                                Self.appendCSVField(Array(Self.plain(cell).utf8), to: &out)
                            }
                        }
                    }
                    out.append(json ? 0x7D : 0x0A)
                }
            }
        }
        rowsWritten += n
        emit(String(decoding: out, as: UTF8.self))
    }

    /// How each column's cells are read: i64 and utf8 straight from their buffers (when they hold
    /// `n` rows), others through their scalars.
    private static func cellSources(_ columns: [any ArrayNode], rows n: Int) -> [CellSource] {
        columns.map { c in
            if let p = c as? PrimitiveArray, p.ptype == .int64, p.count == n, p.buffer.byteCount / 8 >= n,
                var s = CellSource(kind: .int64, validity: p.validity)
            {
                s.values = p.buffer.typed(Int64.self).baseAddress
                return s
            }
            if let v = c as? VarBinArray, v.dtype.isUTF8, v.count == n,
                var s = CellSource(kind: .utf8, validity: v.validity)
            {
                s.offsets = v.offsets.typed(Int32.self).baseAddress
                s.bytes = v.bytes.baseAddress
                return s
            }
            return CellSource.other
        }
    }

    /// Appends `bytes` (UTF-8) as a JSON string literal: only quote, backslash and control bytes change
    /// (a multi-byte UTF-8 sequence holds no byte below 0x80).
    static func appendJSONString(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        if bytes.withContiguousStorageIfAvailable({ appendJSONString(contiguous: $0, to: &out) }) != nil { return }
        out.append(0x22)
        for b in bytes {
            if b >= 0x20 && b != 0x22 && b != 0x5C { out.append(b) } else { appendEscape(b, to: &out) }
        }
        out.append(0x22)
    }

    static func appendJSONString(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendJSONString(
            contiguous: UnsafeBufferPointer(
                start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count), to: &out)
    }

    /// Runs of bytes that need no escape are copied whole.
    private static func appendJSONString(contiguous bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        out.append(0x22)
        var run = 0
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C {
                i += 1
                continue
            }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
            appendEscape(b, to: &out)
            i += 1
            run = i
        }
        if run < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...])) }
        out.append(0x22)
    }

    /// A quote, a backslash or a control byte as JSON writes it in a string.
    private static func appendEscape(_ b: UInt8, to out: inout [UInt8]) {
        out.append(0x5C)
        switch b {
        case 0x22: out.append(0x22)
        case 0x5C: out.append(0x5C)
        case 0x0A: out.append(0x6E)
        case 0x0D: out.append(0x72)
        case 0x09: out.append(0x74)
        default:
            let hex: StaticString = "0123456789abcdef"
            out.append(contentsOf: [0x75, 0x30, 0x30])
            hex.withUTF8Buffer { h in
                out.append(h[Int(b >> 4)])
                out.append(h[Int(b & 15)])
            }
        }
    }

    static func json(_ s: Scalar) -> String {
        switch s.value {
        case .null: "null"
        case .bool(let b): b ? "true" : "false"
        case .int(let v): String(v)
        case .uint(let v): String(v)
        case .float(let d): d.isFinite ? plain(s) : "null"
        case .utf8(let t): jsonString(t)
        default: jsonString(plain(s))
        }
    }

    /// `s` as a JSON string literal (escaped byte by byte: a multi-byte UTF-8 sequence never holds a
    /// byte below 0x80, so only quote, backslash and control bytes change).
    public static func jsonString(_ s: String) -> String {
        var s = s
        return s.withUTF8 { src in
            var out = [UInt8]()
            out.reserveCapacity(src.count + src.count / 8 + 2)
            appendJSONString(src, to: &out)
            return String(decoding: out, as: UTF8.self)
        }
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        return out + rest
    }

    var replacingNewlines: String { String(map { $0 == "\n" || $0 == "\r" ? " " : $0 }) }

    var trailingSpacesRemoved: String {
        var s = Substring(self)
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

extension Substring {
    func range(of target: String) -> Range<Index>? {
        guard !target.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(target) { return i..<index(i, offsetBy: target.count) }
            i = index(after: i)
        }
        return nil
    }
}
