extension DictArray {
    /// The aggregate partial of the dictionary: its codes counted, its values weighed by the counts;
    /// nil when the codes are not unsigned integers (the caller decodes and scans).
    func aggregatePartial(_ ctx: ExecutionCtx) throws -> AggregatePartial? {
        guard let codeArray = try ctx.execute(codes) as? PrimitiveArray, codeArray.ptype.isUnsignedInteger else {
            return nil
        }
        let valueArray = try ctx.execute(values)
        let (counts, nullCodes) = try codeArray.ptype.visitIntegerUnchecked(
            CountCodes(codes: codeArray, values: valueArray.count)
        )
        .get()
        var p = try AggregatePartial.weighted(valueArray, counts)
        p.rows += nullCodes
        return p
    }
}

/// How many rows use each dictionary value, and how many rows have a null code: one pass over the
/// codes in their own width (a code past the values is an error).
private struct CountCodes: IntegerPTypeVisitor {
    let codes: PrimitiveArray
    let values: Int
    func visit<C: NativeInteger>(_ type: C.Type) -> Result<([Int], Int), EddyError> {
        var counts = [Int](repeating: 0, count: values)
        var nulls = 0
        let validity = codes.validity
        let bits = ValidityBits(validity)
        var bad: C?
        codes.withValuesUnchecked(C.self) { list in
            withExtendedLifetime(validity) {
                counts.withUnsafeMutableBufferPointer { out in
                    for i in 0..<list.count {
                        guard bits.isValid(i) else {
                            nulls += 1
                            continue
                        }
                        let c = list[i]
                        guard c >= 0, UInt64(truncatingIfNeeded: c) < UInt64(values) else {
                            if bad == nil { bad = c }
                            continue
                        }
                        out[Int(truncatingIfNeeded: c)] += 1
                    }
                }
            }
        }
        if let bad {
            return .failure(EddyError(.outOfBounds, "dictionary code \(bad) out of bounds for \(values) values"))
        }
        return .success((counts, nulls))
    }
}
