"""Eddy's kernels against numpy, polars and pyarrow on the same shapes, in one run.

Runs `EddyBenchmarks --json` (the engine, one thread) and times the peers here on data of the same
shape and size, then prints a table: eddy's median, each peer's, and eddy / the reference the issue
names (numpy for sums, polars for the filter and the dictionary compare; an absolute bound for the
1k-row compare). Numbers are printed, never asserted.

Usage: python Benchmarks/kernels.py [--bench Benchmarks/.build/release/EddyBenchmarks] [--quick]
Build first: swift build -c release --package-path Benchmarks
"""
import argparse
import json
import statistics
import subprocess
import time

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="Benchmarks/.build/release/EddyBenchmarks")
ap.add_argument("--quick", action="store_true", help="1M rows instead of 10M (names say 1M)")
args = ap.parse_args()

N = 1_000_000 if args.quick else 10_000_000
LABEL = "1M" if args.quick else "10M"
rng = np.random.default_rng(42)


def median_ns(fn, min_seconds=0.2, samples=9):
    """Median time per call in ns: `samples` samples, each of enough calls to take min_seconds / samples."""
    fn()
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        dt = time.perf_counter_ns() - t0
        if dt > min_seconds * 1e9 / samples or calls > 1 << 20:
            break
        calls *= 4
    per = []
    for _ in range(samples):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        per.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(per)


# The engine first (one process, its own data generated the same way).
cmd = [args.bench, "--json"] + (["--quick"] if args.quick else [])
out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
eddy = {}
for line in out.splitlines():
    if line.startswith("{"):
        o = json.loads(line)
        eddy[o["name"]] = o["median_ns"]

peers = {}

# Sum of plain int64 in ±1e6.
plain = rng.integers(-1_000_000, 1_000_001, N, dtype=np.int64)
s_plain = pl.Series(plain)
a_plain = pa.array(plain)
peers[f"sum.i64.plain.{LABEL}"] = {
    "numpy": median_ns(lambda: plain.sum()),
    "polars": median_ns(lambda: s_plain.sum()),
    "pyarrow": median_ns(lambda: pc.sum(a_plain)),
}

# Sum over runs: about 100k runs of 1..199 rows, stored as run ends and values (eddy: u32 ends). numpy's
# hand-fused sum from run ends is dot(values, diff(ends)) (ends as int64, numpy's own choice); dot over
# lengths computed beforehand, which a run-end array does not store, is shown too.
lengths = rng.integers(1, 200, N // 100, dtype=np.int64)
lengths = lengths[: np.searchsorted(np.cumsum(lengths), N) + 1]
lengths[-1] -= lengths.sum() - N
ends = np.cumsum(lengths)
values = rng.integers(-1_000_000, 1_000_001, len(lengths), dtype=np.int64)
# (np.diff's prepend= concatenates first, which costs more than the dot: the first run is added apart.)
def fused(): return np.dot(values[1:], np.diff(ends)) + values[0] * ends[0]
assert fused() == np.dot(values, lengths)
peers[f"sum.i64.run_end.{LABEL}"] = {
    "numpy dot(v, diff(ends))": median_ns(fused),
    "numpy dot(v, lengths)": median_ns(lambda: np.dot(values, lengths)),
}

# Filter 10% of an int64 column with 12-bit spread (eddy: frame-of-reference + bit-packed).
narrow = 1_000_000 + rng.integers(0, 4096, N, dtype=np.int64)
mask = rng.random(N) < 0.1
s_narrow, s_mask = pl.Series(narrow), pl.Series(mask)
a_narrow, a_mask = pa.array(narrow), pa.array(mask)
peers[f"filter10.i64.for_bitpacked.{LABEL}"] = {
    "polars": median_ns(lambda: s_narrow.filter(s_mask)),
    "numpy": median_ns(lambda: narrow[mask]),
    "pyarrow": median_ns(lambda: pc.filter(a_narrow, a_mask)),
}

# Equality on a dictionary of 1,000 distinct strings.
letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
distinct = [f"{i:04d}_" + "".join(rng.choice(letters, 2 + int(rng.integers(0, 18)))) for i in range(1000)]
codes = rng.integers(0, 1000, N, dtype=np.uint16)
enum = pl.Series(np.array(distinct, dtype=object)[codes], dtype=pl.Enum(distinct))
needle = distinct[int(codes[0])]
a_dict = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int16)), pa.array(distinct))
peers[f"compare.utf8.dict.{LABEL}"] = {
    "polars Enum": median_ns(lambda: enum == needle),
    "pyarrow dict": median_ns(lambda: pc.equal(a_dict, pa.scalar(needle))),
}
small = pa.DictionaryArray.from_arrays(pa.array(codes[:1000].astype(np.int16)), pa.array(distinct))
peers["compare.utf8.dict.1k.fresh_ctx"] = {
    "pyarrow dict": median_ns(lambda: pc.equal(small, pa.scalar(needle)), min_seconds=0.1),
}

# name, reference peer, target ratio (eddy / reference), or an absolute bound in ns.
TARGETS = [
    (f"sum.i64.plain.{LABEL}", "numpy", "<= 1.1x numpy", lambda e, r: e / r <= 1.1),
    (f"sum.i64.run_end.{LABEL}", "numpy dot(v, diff(ends))", "<= 0.5x numpy dot", lambda e, r: e / r <= 0.5),
    (f"filter10.i64.for_bitpacked.{LABEL}", "polars", "<= polars", lambda e, r: e / r <= 1.0),
    (f"compare.utf8.dict.{LABEL}", "polars Enum", "< polars Enum", lambda e, r: e / r < 1.0),
    ("compare.utf8.dict.1k.fresh_ctx", "pyarrow dict", "<= 1 us", lambda e, r: e <= 1000),
]


def fmt(ns):
    return f"{ns / 1e6:.3f} ms" if ns >= 100_000 else f"{ns / 1e3:.2f} us"


print(f"Eddy kernels vs peers, one run, one thread each, {N:,} rows (median per call)")
print(f"{'benchmark':38} {'eddy':>11}  {'peers':76} {'eddy/ref':>9}  target")
for name, ref, target, ok in TARGETS:
    e = eddy.get(name)
    ps = peers.get(name, {})
    shown = ", ".join(f"{k} {fmt(v)}" for k, v in ps.items())
    if e is None:
        print(f"{name:38} {'missing':>11}  {shown:76}")
        continue
    r = ps[ref]
    verdict = "met" if ok(e, r) else "NOT met"
    print(f"{name:38} {fmt(e):>11}  {shown:76} {e / r:>8.2f}x  {target}: {verdict}")
for name in sorted(set(eddy) - {t[0] for t in TARGETS}):
    print(f"{name:38} {fmt(eddy[name]):>11}")
