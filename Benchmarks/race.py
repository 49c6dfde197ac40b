"""The race: `eddy eval` on CSV against DuckDB, polars and DataFusion, end to end (each reads the file
for every query, on all cores), on one generated table; answers compared; a table of medians and
ratios (eddy / fastest peer), with the geometric mean. Each query runs `--warmup` times (default 1)
untimed on every engine before its timed runs.

Usage: python Benchmarks/race.py [--rows N] [--eddy PATH] [--runs K] [--csv PATH] [--native]
Needs duckdb, polars and (optionally) datafusion from PyPI; an engine that is not installed is left
out of the table.

--native adds the native lane: the same table converted once into each engine's own format (`eddy
convert` to .eddy, polars to Parquet with zstd, DuckDB to a table file), conversion times and file
sizes, then the same queries on those files: eddy through a warm `eddy serve` (HTTP on loopback over one
kept-alive connection, `--new-connections` for one per request; the request's threads = all cores), polars `scan_parquet`, DataFusion `register_parquet`, DuckDB on its
table file (one open connection, as a warm server would keep it).
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
ap.add_argument("--native", action="store_true", help="also race on each engine's own file format")
ap.add_argument("--native-only", action="store_true", help="only the native lane")
ap.add_argument("--new-connections", action="store_true",
                help="native lane: a new HTTP connection per request (default: one kept-alive connection)")
ap.add_argument("--warmup", type=int, default=1,
                help="untimed runs of each query on each engine before the timed ones (default 1)")
ap.add_argument("--serve-args", default="", help="extra arguments for eddy serve in the native lane, e.g. '--workers 0'")
ap.add_argument("--client", choices=["http.client", "socket"], default="http.client",
                help="native lane: Python's http.client (default) or a minimal HTTP/1.1 client on a socket "
                     "(eddy_serve.SocketClient), to show the client's share of a small request")
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
    # Every engine gets the same untimed warm-up runs (page cache, its own caches, a worker's first
    # open of the file) before the timed ones.
    for _ in range(args.warmup):
        f()
    times = []
    result = None
    for _ in range(args.runs):
        t = time.perf_counter()
        result = f()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2], result


def race(engines_run, show, label):
    """Every query on every engine (eddy takes where/select, the others SQL): a row of medians, the
    ratio eddy / fastest peer, whether the answers agree; then the geometric mean of the ratios."""
    names = list(engines_run)
    print(f"{'query':<12}" + "".join(f"{n:>12}" for n in names) + f"{'eddy/best':>12}  answers")
    ratios = []
    for name, where, select, sql in QUERIES:
        times, answers = {}, {}
        for engine, f in engines_run.items():
            t, rows = median_time((lambda f=f: f(where, select)) if engine == "eddy" else (lambda f=f: f(sql)))
            times[engine] = t
            answers[engine] = normalise(rows)
        peers = [times[n] for n in names if n != "eddy"]
        ratio = times["eddy"] / min(peers) if peers else float("nan")
        ratios.append(ratio)
        same = all(answers[n] == answers["eddy"] for n in names)
        print(f"{name:<12}" + "".join(show(times[n]) for n in names) + f"{ratio:>11.2f}x  "
              + ("identical" if same else "DIFFER: " + ", ".join(n for n in names if answers[n] != answers["eddy"])))
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else float("nan")
    print(f"{label}: {geo:.2f}x")


def lane_csv():
    print(f"race: {args.rows:,} rows, {mb:.0f} MB CSV, {os.cpu_count()} cores, median of {args.runs} runs, "
          f"whole query including the file read; eddy = {args.eddy} {args.eddy_args}".rstrip())
    race(engines, lambda t: f"{t:>11.3f}s", "geometric mean eddy / fastest peer")


def lane_native():
    import http.client
    import json
    import shutil
    import urllib.request

    import eddy_serve

    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    plugins = tempfile.mkdtemp()
    eddy_file = os.path.join(work, "race.eddy")
    parquet = os.path.join(work, "race.parquet")
    duck_file = os.path.join(work, "race.duckdb")

    def timed(f):
        t = time.perf_counter()
        f()
        return time.perf_counter() - t

    conv = {}
    conv["eddy"] = timed(lambda: subprocess.run(
        [args.eddy, "convert", path, eddy_file, "--plugin-dir", plugins], check=True, capture_output=True))
    if "polars" in engines:
        conv["polars"] = timed(lambda: pl.read_csv(path).write_parquet(parquet))
    if "duckdb" in engines:
        def duck_convert():
            con = duckdb.connect(duck_file)
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', header=true)")
            con.close()
        conv["duckdb"] = timed(duck_convert)
    sizes = {"eddy": os.path.getsize(eddy_file)}
    if os.path.exists(parquet):
        sizes["polars"] = os.path.getsize(parquet)
    if os.path.exists(duck_file):
        sizes["duckdb"] = os.path.getsize(duck_file)
    print(f"\nnative lane: {args.rows:,} rows converted once; median of {args.runs} runs per query, "
          f"eddy through a warm eddy serve ({os.cpu_count()} threads per request, client: "
          f"{'new connections' if args.new_connections else args.client}) {args.serve_args}".rstrip())
    print("conversion   " + "  ".join(f"{k} {v:.2f}s ({sizes.get(k, 0) / 1e6:.1f} MB)" for k, v in conv.items()))
    if "polars" in conv:
        print(f"eddy convert / polars write_parquet: {conv['eddy'] / conv['polars']:.2f}x time, "
              f"{sizes['eddy'] / sizes['polars']:.2f}x size (Parquet zstd, polars defaults)")

    server, port = eddy_serve.start(args.eddy, plugins, work, args.serve_args.split())
    try:
        # One kept-alive HTTP connection, as a client of a warm server keeps it (DuckDB likewise keeps
        # its connection open); --new-connections opens one per request instead.
        conn = [None]

        lean = eddy_serve.SocketClient(port, token=server.token)
        auth = eddy_serve.auth_headers(server.token)

        def post(payload):
            if args.client == "socket" and not args.new_connections:
                status, data = lean.post("/eval", payload)
                if status != 200:
                    raise RuntimeError(f"eddy serve answered {status}: {data[:300]!r}")
                return data
            if args.new_connections:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/eval", data=payload,
                    headers={"Content-Type": "application/json", **auth})
                return urllib.request.urlopen(req, timeout=120).read()
            for attempt in range(2):
                if conn[0] is None:
                    conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                try:
                    conn[0].request("POST", "/eval", payload, {"Content-Type": "application/json", **auth})
                    reply = conn[0].getresponse()
                    data = reply.read()
                    if reply.status != 200:
                        raise RuntimeError(f"eddy serve answered {reply.status}: {data[:300]!r}")
                    return data
                except (http.client.HTTPException, ConnectionError):
                    conn[0].close()
                    conn[0] = None
                    if attempt == 1:
                        raise

        def run_eddy_serve(where, select):
            # CSV output, as `eddy eval` prints it in the CSV lane: rows in select order.
            body = {"path": eddy_file, "select": select, "threads": os.cpu_count(), "format": "csv"}
            if where:
                body["where"] = where
            reply = json.loads(post(json.dumps(body).encode()))
            lines = reply["result"].strip("\n").split("\n")[1:]
            return [l.split(",") for l in lines]

        native = {"eddy": run_eddy_serve}
        if "duckdb" in engines:
            duck = duckdb.connect(duck_file, read_only=True)
            native["duckdb"] = lambda sql: duck.execute(sql).fetchall()
        if "polars" in engines:
            native["polars"] = lambda sql: pl.SQLContext(t=pl.scan_parquet(parquet)).execute(sql).collect().rows()
        if "datafusion" in engines:
            dctx = datafusion.SessionContext()
            dctx.register_parquet("t", parquet)
            native["datafusion"] = lambda sql: [tuple(r.values()) for r in dctx.sql(sql).to_pylist()]
        # Warm every engine once (the server's first request maps the file; DuckDB's first reads its pages).
        for engine, f in native.items():
            f(None, "count(*)") if engine == "eddy" else f("SELECT count(*) FROM t")
        race(native, lambda t: f"{t * 1000:>10.1f}ms",
             "geometric mean eddy (.eddy via serve) / fastest peer (native files)")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if not args.native_only:
    lane_csv()
if args.native or args.native_only:
    lane_native()
