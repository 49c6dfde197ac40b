"""CSV read throughput: `eddy eval FILE --select "count(*)"` (parse, infer, build, compress, count)
against pyarrow's CSV reader on the same file. Prints MB/s for both and the ratio.

Usage: python Benchmarks/csv_throughput.py [--rows N] [--eddy PATH]
"""
import argparse
import os
import random
import subprocess
import tempfile
import time

import pyarrow as pa
import pyarrow.csv as pacsv

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=2_000_000)
ap.add_argument("--eddy", default=".build/release/eddy")
ap.add_argument("--runs", type=int, default=3)
args = ap.parse_args()

pa.set_cpu_count(1)
pa.set_io_thread_count(1)
rng = random.Random(42)
cities = ["Lyon", "Paris", "Marseille", "Lille", "Nantes", "Zürich", "São Paulo"]
path = os.path.join(tempfile.mkdtemp(), "bench.csv")
with open(path, "w") as fh:
    fh.write("id,city,distance,fare,passengers,flag\n")
    for i in range(args.rows):
        fh.write(f"{i},{rng.choice(cities)},{rng.random() * 30:.2f},{3.5 + rng.random() * 60:.2f},{rng.randint(1, 4)},{'true' if rng.random() < 0.3 else 'false'}\n")
mb = os.path.getsize(path) / 1e6


def best(f):
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def eddy():
    subprocess.run([args.eddy, "eval", path, "--select", "count(*)", "--format", "csv"], check=True, capture_output=True)


def arrow():
    pacsv.read_csv(path, read_options=pacsv.ReadOptions(use_threads=False))


te, ta = best(eddy), best(arrow)
print(f"file: {args.rows} rows, {mb:.1f} MB")
print(f"eddy eval (read + compress + count): {mb / te:8.1f} MB/s  ({te * 1000:.0f} ms)")
print(f"pyarrow read_csv (one thread):       {mb / ta:8.1f} MB/s  ({ta * 1000:.0f} ms)")
print(f"eddy / pyarrow throughput ratio: {ta / te:.2f}")
