#!/usr/bin/env python3
"""Changes a copy of plugin-sdk the way a minor SDK release may: a stored property in a public class
(DictArray) and in the context (ExecutionCtx — the change that crashed older plugins while it was
frozen), a protocol requirement with a default (ArrayNode), a new case in a non-frozen enum
(OperandSide) and a new function. With --break it also removes a public function, which the ABI
check must refuse. Usage: minor-release.py SDK_DIR [--break]"""
import sys

root = sys.argv[1]
breaking = "--break" in sys.argv[2:]


def edit(path, old, new):
    p = f"{root}/Sources/Eddy/{path}"
    s = open(p).read()
    if old not in s:
        sys.exit(f"minor-release.py: {path}: anchor not found: {old!r}")
    open(p, "w").write(s.replace(old, new, 1))


edit("Encodings/Dictionary/DictArray.swift", "    public let dtype: DType\n",
     "    public let dtype: DType\n    /// Added in the next minor release.\n    public let minorReleaseTag: Int = 7\n")
edit("Execution/ExecutionCtx.swift", "    public let trace: ExecutionTrace?\n",
     "    public let trace: ExecutionTrace?\n    /// Added in the next minor release.\n    public let minorReleaseBudget: Int = Int.max\n")
edit("Array/ArrayNode.swift", "    var metadataDescription: String { get }\n}\n",
     "    var metadataDescription: String { get }\n    /// Added in the next minor release, with a default.\n"
     "    var minorReleaseNote: String { get }\n}\n\nextension ArrayNode {\n"
     "    public var minorReleaseNote: String { \"\" }\n}\n")
edit("Plugin/TypedKernels.swift", "    case right\n}\n", "    case right\n    /// Added in the next minor release.\n    case both\n}\n")
edit("Execution/ExecutionCtx.swift", "public struct ExecutionCtx: Sendable {\n",
     "public struct ExecutionCtx: Sendable {\n    /// Added in the next minor release.\n"
     "    public func minorReleaseFunction() -> Int { 42 }\n\n")
if breaking:
    edit("Plugin/TypedKernels.swift", "    public func matches(utf8 bytes: UnsafeRawBufferPointer) -> Bool { matcher.matches(bytes) != negated }\n", "")
