"""The race: `eddy eval` on CSV against DuckDB, polars and DataFusion, end to end (each reads the file
for every query, on all cores), on one generated table; answers compared; a table of medians and
ratios (eddy / fastest peer), with the geometric mean. Each query runs `--warmup` times (default 1)
untimed on every engine before its timed runs.

Usage: python Benchmarks/race.py [--rows N] [--eddy PATH] [--runs K] [--csv PATH] [--native] [--with-plugins DIR]
Needs duckdb, polars and (optionally) datafusion from PyPI; an engine that is not installed is left
out of the table.

--with-plugins DIR adds the plugin lane: eddy alone, every query with the plugins in DIR loaded against the
same binary with an empty plugin directory, on the CSV file and on its `.eddy` conversion (one-shot `eddy eval`,
so loading the plugins is counted; then the `.eddy` file through a warm `eddy serve` of each kind), runs
alternating; the ratio with / without per query, which plugin kernels fired, and whether the answers agree.
A loaded plugin must not make a query slower (target ≤ 1.05×); one whose kernel fires should make it faster.

--native adds the native lane: the same table converted once into each engine's own format (`eddy
convert` to .eddy, polars to Parquet with zstd, DuckDB to a table file), conversion times and file
sizes, then the same queries on those files: eddy through a warm `eddy serve` (HTTP on loopback over one
kept-alive connection, `--new-connections` for one per request; the request's threads = all cores), polars `scan_parquet`, DataFusion `register_parquet`, DuckDB on its
table file (one open connection, as a warm server would keep it).

--parquet (or --parquet-only) adds the Parquet lane: the table written once by polars (write_parquet, zstd),
then the same queries on that file: `eddy eval file.parquet` one-shot and through a warm `eddy serve`, against
DuckDB `read_parquet`, polars `scan_parquet` and DataFusion `register_parquet`, every engine reading the file in
place for each query; target <= 1.0x the fastest (geometric mean). The one-shot is also raced against one-shots:
the peers' own command-line programs, each a whole process that reads the file and prints CSV (PyPI's
`duckdb-cli` and `polars-cli`, found on PATH or beside this Python; left out when not installed).
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
ap.add_argument("--parquet", action="store_true",
                help="also race on one Parquet file (polars' write_parquet), read by every engine in place")
ap.add_argument("--parquet-only", action="store_true", help="only the Parquet lane")
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
ap.add_argument("--with-plugins", metavar="DIR", default=None,
                help="the plugin lane: eddy with the plugins in DIR against eddy without plugins, CSV and .eddy")
ap.add_argument("--plugins-only", action="store_true", help="only the plugin lane (with --with-plugins)")
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

# The plugin lane adds a query that is one comparison on a low-cardinality column: on an `.eddy` file the
# column is a dictionary with bit-packed codes, where the packed-dict-compare example plugin's kernel fires.
PLUGIN_QUERIES = QUERIES + [
    ("compare", "carrier = 'AF'", "count(*)", "SELECT count(*) FROM t WHERE carrier = 'AF'"),
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


def lane_parquet():
    """The same queries on one Parquet file (written by polars, zstd, its default row groups): `eddy eval
    file.parquet` one-shot, then through a warm `eddy serve` (path under --data-dir), against DuckDB
    `read_parquet`, polars `scan_parquet` and DataFusion `register_parquet`, each reading the file per query."""
    import csv
    import http.client
    import io
    import json
    import shutil
    import sys

    import eddy_serve

    def processes_version(name):
        program = shutil.which(name.removesuffix("-cli")) or os.path.join(os.path.dirname(sys.executable),
                                                                        name.removesuffix("-cli"))
        flag = "-version" if name == "duckdb-cli" else "-V"
        return subprocess.run([program, flag], capture_output=True, text=True).stdout.strip()

    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    parquet = os.path.join(work, "race.parquet")
    pl.read_csv(path).write_parquet(parquet)
    print(f"\nparquet lane: {args.rows:,} rows, {os.path.getsize(parquet) / 1e6:.1f} MB Parquet (polars write_parquet, "
          f"zstd), {os.cpu_count()} cores, median of {args.runs} runs; eddy = {args.eddy} {args.eddy_args}".rstrip())

    def eddy_parquet(where, select):
        cmd = [args.eddy, "eval", parquet, "--select", select, "--format", "csv", "--plugin-dir", tempfile.mkdtemp()]
        if where:
            cmd += ["--where", where]
        out = subprocess.run(cmd + args.eddy_args.split(), check=True, capture_output=True, text=True).stdout
        return [l.split(",") for l in out.strip("\n").split("\n")[1:]]

    peers = {}
    if "duckdb" in engines:
        peers["duckdb"] = lambda sql: duckdb.connect().execute(
            sql.replace("FROM t", f"FROM read_parquet('{parquet}')")).fetchall()
    if "polars" in engines:
        peers["polars"] = lambda sql: pl.SQLContext(t=pl.scan_parquet(parquet)).execute(sql).collect().rows()
    if "datafusion" in engines:
        def run_datafusion_parquet(sql):
            ctx = datafusion.SessionContext()
            ctx.register_parquet("t", parquet)
            return [tuple(r.values()) for r in ctx.sql(sql).to_pylist()]
        peers["datafusion"] = run_datafusion_parquet
    race({"eddy": eddy_parquet, **peers}, lambda t: f"{t:>11.3f}s",
         "geometric mean eddy eval (a process) / fastest peer (in this process) (Parquet)")

    # A one-shot against one-shots: the peers' own command-line programs, each a whole process that reads the
    # file and prints CSV, as `eddy eval` is (PyPI's duckdb-cli and polars-cli; DataFusion has none there).
    def cli(program):
        found = shutil.which(program) or shutil.which(program, path=os.path.dirname(sys.executable))
        return found

    def cli_rows(cmd):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return list(csv.reader(io.StringIO(out)))[1:]

    processes = {}
    if cli("duckdb"):
        duckdb_cli = cli("duckdb")
        processes["duckdb-cli"] = lambda sql: cli_rows(
            [duckdb_cli, "-csv", "-c", sql.replace("FROM t", f"FROM read_parquet('{parquet}')")])
    if cli("polars"):
        polars_cli = cli("polars")
        processes["polars-cli"] = lambda sql: cli_rows(
            [polars_cli, "-o", "csv", "-c", sql.replace("FROM t", f"FROM read_parquet('{parquet}')")])
    if processes:
        print("\none-shot processes: eddy eval against the peers' command-line programs "
              + ", ".join(f"{n} ({processes_version(n)})" for n in processes))
        race({"eddy": eddy_parquet, **processes}, lambda t: f"{t:>11.3f}s",
             "geometric mean eddy eval / fastest peer, every engine a process (Parquet)")
    else:
        print("\none-shot processes: left out (pip install duckdb-cli polars-cli for the peers' programs)")

    server, port = eddy_serve.start(args.eddy, tempfile.mkdtemp(), work, args.serve_args.split())
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        auth = eddy_serve.auth_headers(server.token)

        def eddy_serve_parquet(where, select):
            body = {"path": parquet, "select": select, "threads": os.cpu_count(), "format": "csv"}
            if where:
                body["where"] = where
            conn.request("POST", "/eval", json.dumps(body).encode(), {"Content-Type": "application/json", **auth})
            reply = conn.getresponse()
            data = reply.read()
            if reply.status != 200:
                raise RuntimeError(f"eddy serve answered {reply.status}: {data[:300]!r}")
            return [l.split(",") for l in json.loads(data)["result"].strip("\n").split("\n")[1:]]

        race({"eddy": eddy_serve_parquet, **peers}, lambda t: f"{t * 1000:>10.1f}ms",
             "geometric mean eddy serve / fastest peer (Parquet)")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if args.parquet_only:
    lane_parquet()
    raise SystemExit(0)


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


def lane_plugins():
    """Each query with the plugins of --with-plugins and without, on CSV and `.eddy`; see the docstring."""
    import glob
    import json
    import shutil

    import eddy_serve

    work = tempfile.mkdtemp()
    os.chmod(work, 0o700)
    with_dir, without_dir = os.path.join(work, "plugins"), os.path.join(work, "none")
    os.mkdir(with_dir, 0o700)
    os.mkdir(without_dir, 0o700)
    for so in sorted(glob.glob(os.path.join(args.with_plugins, "*.so"))):
        shutil.copy(so, with_dir)
    # The first load of a plugin build runs its probe and verification (remembered for later loads): once,
    # untimed, as any installation does once.
    report = json.loads(subprocess.run([args.eddy, "plugins", "--plugin-dir", with_dir, "--json"],
                                       capture_output=True, text=True).stdout)
    loaded = [f"{r['plugin']}@{r['version']}" for r in report["files"] if r["status"] == "loaded"]
    eddy_file = os.path.join(work, "race.eddy")
    subprocess.run([args.eddy, "convert", path, eddy_file, "--plugin-dir", without_dir], check=True,
                   capture_output=True)

    def run(file, plugins, where, select, extra=()):
        cmd = [args.eddy, "eval", file, "--select", select, "--format", "csv", "--plugin-dir", plugins]
        cmd += (["--where", where] if where else []) + args.eddy_args.split() + list(extra)
        return subprocess.run(cmd, check=True, capture_output=True, text=True)

    def fired(file, where, select, serve=False):
        """The plugins whose kernels or rules fired on the query's first batch (`--explain`); for the serve
        lane with every build mapped, as `eddy serve` maps them (a one-shot maps a build for its kernels
        alone only from `--plugin-min-rows` rows)."""
        extra = ["--plugin-min-rows", "0"] if serve else []
        err = run(file, with_dir, where, select, ["--explain", "--threads", "1"] + extra).stderr
        part = err.split("== kernels and rules that fired", 1)[1] if "kernels and rules that fired" in err else ""
        names = {l.split("[plugin ", 1)[1].rstrip("]") for l in part.splitlines() if "[plugin " in l}
        return ",".join(sorted(names)) or "-"

    def rows(out):
        return normalise([l.split(",") for l in out.strip("\n").split("\n")[1:]])

    def pair(f_without, f_with):
        """Medians of --runs alternating runs of each (after --warmup of each), and both answers."""
        for _ in range(args.warmup):
            f_without()
            f_with()
        t0, t1 = [], []
        for _ in range(args.runs):
            for f, ts in ((f_without, t0), (f_with, t1)):
                t = time.perf_counter()
                out = f()
                ts.append(time.perf_counter() - t)
                if ts is t0:
                    a0 = out
                else:
                    a1 = out
        return sorted(t0)[len(t0) // 2], sorted(t1)[len(t1) // 2], a0, a1

    print(f"\nplugin lane: eddy with the plugins in {args.with_plugins} ({', '.join(loaded) or 'none loaded'}) / "
          f"the same binary without plugins; median of {args.runs} alternating runs; one-shot eddy eval "
          f"(plugin loading counted), then .eddy through a warm eddy serve")
    print(f"{'query':<12}{'input':>8}{'without':>11}{'with':>11}{'with/without':>14}  {'plugin kernels fired':<26} answers")
    ratios = {}

    def line(name, lane, t0, t1, fire, same, unit):
        r = t1 / t0
        ratios.setdefault(lane, []).append(r)
        show = (lambda t: f"{t:>10.3f}s") if unit == "s" else (lambda t: f"{t * 1000:>9.1f}ms")
        print(f"{name:<12}{lane:>8}{show(t0)}{show(t1)}{r:>13.2f}x  {fire:<26} "
              + ("identical" if same else "DIFFER"))

    for name, where, select, _ in PLUGIN_QUERIES:
        for lane, file in (("csv", path), ("eddy", eddy_file)):
            t0, t1, a0, a1 = pair(lambda: run(file, without_dir, where, select).stdout,
                                  lambda: run(file, with_dir, where, select).stdout)
            line(name, lane, t0, t1, fired(file, where, select), rows(a0) == rows(a1), "s")

    servers = {}
    try:
        for kind, plugins in (("without", without_dir), ("with", with_dir)):
            servers[kind] = eddy_serve.start(args.eddy, plugins, work, args.serve_args.split())
        clients = {k: eddy_serve.SocketClient(port, token=server.token) for k, (server, port) in servers.items()}

        def serve(kind, where, select):
            body = {"path": eddy_file, "select": select, "threads": os.cpu_count(), "format": "csv"}
            if where:
                body["where"] = where
            status, data = clients[kind].post("/eval", json.dumps(body).encode())
            if status != 200:
                raise RuntimeError(f"eddy serve answered {status}: {data[:300]!r}")
            return json.loads(data)["result"]

        for kind in servers:
            serve(kind, None, "count(*)")
        for name, where, select, _ in PLUGIN_QUERIES:
            t0, t1, a0, a1 = pair(lambda: serve("without", where, select), lambda: serve("with", where, select))
            line(name, "serve", t0, t1, fired(eddy_file, where, select, serve=True), rows(a0) == rows(a1), "ms")
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    for lane, rs in ratios.items():
        geo = math.exp(sum(math.log(r) for r in rs) / len(rs))
        print(f"with / without plugins, {lane}: geometric mean {geo:.2f}x, worst {max(rs):.2f}x (target <= 1.05x)")


if args.plugins_only and not args.with_plugins:
    ap.error("--plugins-only needs --with-plugins DIR")
if not args.native_only and not args.plugins_only:
    lane_csv()
if args.with_plugins:
    lane_plugins()
if (args.native or args.native_only) and not args.plugins_only:
    lane_native()
if args.parquet:
    lane_parquet()
