/// Statistics the compressor decides by, from the whole column or, for long columns, a sample of
/// contiguous blocks (so that runs stay visible).
struct ColumnStats {
    var isConstant = false
    var distinct = 0
    var averageRun = 1.0
    var dominant: ScalarValue?
    var dominantFraction = 0.0

    init(_ array: any ArrayNode) {
        let n = array.count
        let sampleRows: [Int]
        if n <= 16_384 {
            sampleRows = Array(0..<n)
        } else {
            let blocks = 64
            let blockLength = 128
            let step = n / blocks
            sampleRows = (0..<blocks).flatMap { b in (b * step)..<Swift.min(b * step + blockLength, n) }
        }
        // Keyed by identity: -0.0 and 0.0 are equal as numbers but must not merge into one value.
        var counts: [ScalarValue: Int] = [:]
        func key(_ v: ScalarValue) -> ScalarValue { if case .float(let d) = v { .uint(d.bitPattern) } else { v } }
        var runs = 0
        var previous: ScalarValue?
        var previousRow = -2
        for row in sampleRows {
            guard let v = try? array.scalar(at: row).value else { continue }
            counts[key(v), default: 0] += 1
            if previousRow != row - 1 || previous.map({ !$0.isIdentical(to: v) }) ?? true { runs += 1 }
            previous = v
            previousRow = row
        }
        distinct = counts.count
        // Scale distinct values seen in the sample up to the column (a coarse estimate is enough to
        // decide whether a dictionary is worth trying; the dictionary itself gives up past its limit).
        if sampleRows.count < n, distinct > sampleRows.count / 2 { distinct = n }
        averageRun = Double(sampleRows.count) / Double(Swift.max(runs, 1))
        if let (k, c) = counts.max(by: { $0.value < $1.value }) {
            if case .uint(let bits) = k, array.dtype.ptype?.isFloat == true {
                dominant = .float(Double(bitPattern: bits))
            } else {
                dominant = k
            }
            dominantFraction = Double(c) / Double(Swift.max(sampleRows.count, 1))
        }
        if distinct == 1, sampleRows.count == n { isConstant = true }
        if distinct == 1, sampleRows.count < n, let only = dominant {
            isConstant = (0..<n).allSatisfy { (try? array.scalar(at: $0).value.isIdentical(to: only)) == true }
        }
    }
}
