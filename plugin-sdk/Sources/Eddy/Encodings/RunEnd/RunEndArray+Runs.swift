extension RunEndArray {
    /// Calls `body` once per run that holds rows of this array, in order, with the run's index into
    /// ``values`` and the rows (positions within this array, not counting ``offset``) it covers.
    ///
    /// Slices are handled: the first and last runs are cut to the array's rows, and the ranges cover
    /// `0 ..< count` exactly, without gaps. Ends that are encoded are executed first with `ctx`.
    ///
    /// ```swift
    /// try array.forEachRun(ctx) { run, rows in
    ///     try result.append(perRun.value(at: run), count: rows.count)
    /// }
    /// ```
    ///
    /// - Throws: ``EddyError/Code/invalidArgument`` when the ends do not increase strictly or do not
    ///   cover the array's rows; ``EddyError/Code/overflow`` for an end beyond `Int64.max`; what `body`
    ///   throws.
    public func forEachRun(_ ctx: ExecutionCtx, _ body: (_ run: Int, _ rows: Range<Int>) throws -> Void) throws {
        guard count > 0 else { return }
        guard let endsArray = try ctx.execute(ends) as? PrimitiveArray else {
            throw EddyError(.unsupported, "run ends did not execute to a primitive array")
        }
        let list = try endsArray.int64Values()
        var run = RunEndArray.search(list, Int64(offset))
        var rowStart = 0
        while rowStart < count {
            guard run < list.count, run < values.count else {
                throw EddyError(
                    .invalidArgument, "run ends cover \(list.last ?? 0) rows, fewer than offset \(offset) + \(count)")
            }
            // Encoded ends are not checked by init: a run that does not move past its start is malformed.
            let (shifted, overflow) = list[run].subtractingReportingOverflow(Int64(offset))
            guard !overflow, shifted > Int64(rowStart) else {
                throw EddyError(.invalidArgument, "run ends must increase strictly (run \(run) ends at \(list[run]))")
            }
            let rowEnd = shifted >= Int64(count) ? count : Int(shifted)
            try body(run, rowStart..<rowEnd)
            rowStart = rowEnd
            run += 1
        }
    }
}
