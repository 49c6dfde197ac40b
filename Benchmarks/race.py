"""The race: `eddy eval` on CSV against DuckDB, polars and DataFusion, end to end (each reads the file
for every query, on all cores), on one generated table; answers compared; a table of medians and
ratios (eddy / fastest peer), with the geometric mean.

Usage: python Benchmarks/race.py [--rows N] [--eddy PATH] [--runs K] [--csv PATH]
Needs duckdb, polars and (optionally) datafusion from PyPI; an engine that is not installed is left
out of the table.
"""
import argparse
import math
import os
import random
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--rows", type=int, default=1_000_000)
ap.add_argument("--eddy", default=".build/release/eddy")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--csv", default=None, help="reuse this generated file instead of writing a new one")
ap.add_argument("--eddy-args", default="", help="extra arguments for eddy eval, e.g. '--threads 1'")
args = ap.parse_args()

# One table: ints, floats, nulls, low-cardinality strings (carrier, origin, dest) and high-cardinality
# ones (tail, note), 14 columns.
path = args.csv or os.path.join(tempfile.mkdtemp(), "race.csv")
if not args.csv or not os.path.exists(path):
    rng = random.Random(7)
    cities = ["Lyon", "Paris", "Nice", "Lille", "Brest", "Nantes", "Rennes", "Metz", "Dijon", "Tours"]
    carriers = ["AF", "KL", "LH", "BA", "IB", "U2", "FR", "VY"]
    with open(path, "w") as f:
        f.write("id,year,month,day,carrier,origin,dest,dep_delay,arr_delay,distance,air_time,tail,cancelled,note\n")
        for i in range(args.rows):
            dd = "" if rng.random() < 0.02 else str(rng.randint(-20, 300))
            ad = "" if rng.random() < 0.02 else str(rng.randint(-40, 320))
            f.write(
                f"{i},{2020 + i % 5},{1 + i % 12},{1 + i % 28},{rng.choice(carriers)},{rng.choice(cities)},"
                f"{rng.choice(cities)},{dd},{ad},{rng.randint(100, 3000)},{rng.uniform(20, 400):.1f},"
                f"T{rng.randint(0, 99999):05d},{'true' if rng.random() < 0.01 else 'false'},note {rng.randint(0, 1000000)}\n")
mb = os.path.getsize(path) / 1e6

# name, eddy --where, eddy --select, SQL
QUERIES = [
    ("count", None, "count(*)", "SELECT count(*) FROM t"),
    ("filter+sum", "carrier = 'AF' and dep_delay > 60", "count(*), sum(distance)",
     "SELECT count(*), sum(distance) FROM t WHERE carrier = 'AF' AND dep_delay > 60"),
    ("like+agg", "origin like 'L%'", "max(arr_delay), mean(air_time)",
     "SELECT max(arr_delay), avg(air_time) FROM t WHERE origin LIKE 'L%'"),
    ("arith", None, "sum(arr_delay - dep_delay)", "SELECT sum(arr_delay - dep_delay) FROM t"),
    ("project", "dep_delay > 290", "id, tail, note", "SELECT id, tail, note FROM t WHERE dep_delay > 290"),
]


def normalise(rows):
    """Rows as tuples of rounded numbers and strings, sorted, so engines can be compared."""
    out = []
    for r in rows:
        cells = []
        for v in r:
            if v is None or v == "":
                cells.append(None)
            else:
                try:
                    cells.append(round(float(v), 6))
                except (TypeError, ValueError):
                    cells.append(str(v))
        out.append(tuple(cells))
    return sorted(out, key=repr)


def run_eddy(where, select):
    cmd = [args.eddy, "eval", path, "--select", select, "--format", "csv", "--plugin-dir", tempfile.mkdtemp()]
    if where:
        cmd += ["--where", where]
    cmd += args.eddy_args.split()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lines = out.strip("\n").split("\n")[1:]
    return [l.split(",") for l in lines]


engines = {"eddy": run_eddy}
try:
    import duckdb

    def run_duckdb(sql):
        con = duckdb.connect()
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_csv('{path}', header=true)")
        return con.execute(sql).fetchall()

    engines["duckdb"] = run_duckdb
except ImportError:
    pass
try:
    import polars as pl

    def run_polars(sql):
        ctx = pl.SQLContext(t=pl.scan_csv(path))
        return ctx.execute(sql).collect().rows()

    engines["polars"] = run_polars
except ImportError:
    pass
try:
    import datafusion

    def run_datafusion(sql):
        ctx = datafusion.SessionContext()
        ctx.register_csv("t", path)
        return [tuple(r.values()) for r in ctx.sql(sql).to_pylist()]

    engines["datafusion"] = run_datafusion
except ImportError:
    pass


def median_time(f):
    times = []
    result = None
    for _ in range(args.runs):
        t = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], result


print(f"race: {args.rows:,} rows, {mb:.0f} MB CSV, {os.cpu_count()} cores, median of {args.runs} runs, "
      f"whole query including the file read; eddy = {args.eddy} {args.eddy_args}".rstrip())
names = list(engines)
print(f"{'query':<12}" + "".join(f"{n:>12}" for n in names) + f"{'eddy/best':>12}  answers")
ratios = []
for name, where, select, sql in QUERIES:
    times = {}
    answers = {}
    for engine, f in engines.items():
        t, rows = median_time((lambda: f(where, select)) if engine == "eddy" else (lambda f=f: f(sql)))
        times[engine] = t
        answers[engine] = normalise(rows)
    peers = [times[n] for n in names if n != "eddy"]
    ratio = times["eddy"] / min(peers) if peers else float("nan")
    ratios.append(ratio)
    same = all(answers[n] == answers["eddy"] for n in names)
    print(f"{name:<12}" + "".join(f"{times[n]:>11.3f}s" for n in names) + f"{ratio:>11.2f}x  "
          + ("identical" if same else "DIFFER: " + ", ".join(n for n in names if answers[n] != answers["eddy"])))
geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
print(f"geometric mean eddy / fastest peer: {geo:.2f}x")
