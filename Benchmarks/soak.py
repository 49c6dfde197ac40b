"""Soak of a live server's rollout (issue 24, done-when (d)): two clients query `eddy serve --canary`
for 60 s while new builds of one plugin are dropped in turn — one that crashes, one that hangs, one that
answers differently, one that is fine — and every answer is checked against the first build's. Prints
the failed requests outside the canary fraction (the target is zero), those inside it, and what became
of each build.

    swift build && python3 Benchmarks/soak.py --eddy .build/debug/eddy

The plugin is the Decimal fixture (Tests/Fixtures/Decimal), built here with swiftc against the SDK next
to `--eddy` (its Modules directory and libEddy.so): 0.1.0 clean serves first; the new builds are 0.2.0
with `-D DECIMAL_CRASH` (its sum kernel traps), `-D DECIMAL_HANG` (its sum kernel never returns),
`-D DECIMAL_V2 -D DECIMAL_BUG_ROUNDED_CONSTANT` (`x = 12.345` matches 12.35) and `-D DECIMAL_V2`
(clean). A build is dropped by renaming it over the plugin's file, as a deployment should; each drop
appends a few random bytes to its file (the ELF loader ignores them), so that a build dropped again is a
new build (another content hash), not one already quarantined or serving.

A request fails when it is not answered 200 with the first build's result. It counts as a canary request
when its answer carries the `Eddy-Canary` header.
"""
import argparse, http.client, json, os, random, shutil, subprocess, tempfile, threading, time

import eddy_serve

parser = argparse.ArgumentParser()
parser.add_argument("--eddy", required=True)
parser.add_argument("--seconds", type=float, default=60.0)
parser.add_argument("--clients", type=int, default=2)
parser.add_argument("--workers", default="2")
parser.add_argument("--canary", default="0.1", help="eddy serve --canary")
parser.add_argument("--canary-requests", default="50", help="eddy serve --canary-requests")
parser.add_argument("--eval-timeout", default="2", help="eddy serve --eval-timeout (how long a hang holds a request)")
parser.add_argument("--every", type=float, default=7.0, help="seconds between drops")
parser.add_argument("--baseline-seconds", type=float, default=10.0,
                    help="the same clients first, with no build dropped: the baseline for req/s and latency")
args = parser.parse_args()

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build_dir = os.path.dirname(os.path.realpath(args.eddy))
work = tempfile.mkdtemp(prefix="eddy-soak-")
plugins = os.path.join(work, "plugins")
data = os.path.join(work, "data")
copies = os.path.join(work, "copies")
os.makedirs(plugins, mode=0o755)
os.makedirs(data)
os.makedirs(copies, mode=0o700)
os.chmod(plugins, 0o755)


def build(tag, defines):
    """The Decimal fixture built with `defines`, as a .so in the work directory."""
    out = os.path.join(work, f"decimal-{tag}.so")
    source = os.path.join(root, "Tests/Fixtures/Decimal/DecimalPlugin.swift")
    command = ["swiftc", "-O", "-emit-library", "-module-name", f"Decimal_{tag}", "-D", "DECIMAL_SO"]
    for d in defines:
        command += ["-D", d]
    command += [source, "-I", os.path.join(build_dir, "Modules"), "-L", build_dir, "-lEddy", "-o", out]
    subprocess.run(command, check=True)
    return out


builds = {
    "base": build("base", []),
    "crash": build("crash", ["DECIMAL_CRASH"]),
    "hang": build("hang", ["DECIMAL_HANG"]),
    "diverge": build("diverge", ["DECIMAL_V2", "DECIMAL_BUG_ROUNDED_CONSTANT"]),
    "fine": build("fine", ["DECIMAL_V2"]),
}


def drop(kind):
    """Renames a fresh copy of build `kind` (a few random bytes appended) over plugins/decimal.so."""
    staging = os.path.join(plugins, ".decimal.so.new")
    shutil.copy(builds[kind], staging)
    with open(staging, "ab") as f:
        f.write(os.urandom(16))
    os.chmod(staging, 0o644)
    os.rename(staging, os.path.join(plugins, "decimal.so"))


csv = os.path.join(data, "decimals.csv")
with open(csv, "w") as f:
    f.write("id,x\n" + "".join(f"{i},{[12.34, 12.35, 1.5][i % 3]}\n" for i in range(3000)))
# Queries in which the plugin's code runs: its sum kernel (the crashing and hanging builds), its compare
# kernel (the diverging build matches 12.35 for 12.345).
queries = [
    {"path": csv, "select": "sum(x), count(*)"},
    {"path": csv, "where": "x = 12.345", "select": "count(*)"},
    {"path": csv, "where": "x > 12.34", "select": "min(x), max(x), count(*)"},
]

# The server's private copies, quarantine records and crash bundles stay in the work directory.
os.environ["EDDY_SHADOW_DIR"] = copies
os.environ["EDDY_BUNDLE_DIR"] = os.path.join(work, "bundles")
drop("base")
server, port = eddy_serve.start(
    args.eddy, plugins, data,
    ["--workers", args.workers, "--verify", "off", "--no-confine", "--canary", args.canary,
     "--canary-requests", args.canary_requests, "--eval-timeout", args.eval_timeout])
auth = eddy_serve.auth_headers(server.token)


def get(path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path, headers=auth)
    r = conn.getresponse()
    return r.read()


def post(conn, q):
    """(status, result, canary header) of one query."""
    conn.request("POST", "/eval", body=json.dumps(q), headers={"Content-Type": "application/json", **auth})
    r = conn.getresponse()
    body = r.read()
    try:
        result = json.loads(body).get("result")
    except ValueError:
        result = None
    return r.status, result, r.getheader("Eddy-Canary")


# Wait for 0.1.0, then take each query's answer from it.
for _ in range(200):
    report = json.loads(get("/plugins"))
    if any(f.get("version") == "0.1.0" and f.get("status") == "loaded" for f in report.get("files", [])):
        break
    time.sleep(0.1)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
expected = []
for q in queries:
    status, result, _ = post(conn, q)
    assert status == 200, status
    expected.append(result)

lock = threading.Lock()


def new_phase():
    return {"requests": 0, "canary": 0, "failed outside canary": 0, "failed canary": 0, "latencies": [],
            "failures": []}


def client(seed, stop, phase):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < stop:
        k = rng.randrange(len(queries))
        t = time.perf_counter()
        try:
            status, result, canary = post(conn, queries[k])
        except (OSError, http.client.HTTPException) as e:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            status, result, canary = 0, repr(e), None
        elapsed = time.perf_counter() - t
        ok = status == 200 and result == expected[k]
        with lock:
            phase["requests"] += 1
            phase["latencies"].append(elapsed)
            if canary:
                phase["canary"] += 1
            if not ok:
                phase["failed canary" if canary else "failed outside canary"] += 1
                if len(phase["failures"]) < 20:
                    phase["failures"].append(
                        (status, str(result)[:200], canary, queries[k].get("where", queries[k]["select"])))


def run_clients(seconds, drops=()):
    """Runs the clients for `seconds`, dropping `drops` in turn every --every seconds; the phase's counts
    and the drops made (seconds since the start, build)."""
    phase = new_phase()
    stop = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(i, stop, phase)) for i in range(args.clients)]
    started = time.monotonic()
    [t.start() for t in threads]
    dropped = []
    for kind in drops:
        time.sleep(args.every)
        if time.monotonic() >= stop - 2:
            break
        drop(kind)
        dropped.append((round(time.monotonic() - started, 1), kind))
    [t.join() for t in threads]
    phase["latencies"].sort()
    return phase, dropped


baseline, _ = run_clients(args.baseline_seconds)
schedule = ["crash", "hang", "diverge", "fine", "crash", "diverge", "fine", "hang"]
counts, dropped = run_clients(args.seconds, schedule)

report = json.loads(get("/plugins"))
metrics = {}
for line in get("/metrics").decode().splitlines():
    if line.startswith(("eddy_canary", "eddy_quarantines", "eddy_worker_restarts", "eddy_last_good")):
        name, value = line.split()
        metrics[name] = float(value)
server.terminate()
server.wait(timeout=20)

def phase_line(name, phase, seconds):
    lat = phase["latencies"]
    return (f"{name:9} {phase['requests'] / seconds:6.0f} req/s, p50 {lat[len(lat) // 2] * 1000:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, max {lat[-1] * 1000:.0f} ms; "
            + ", ".join(f"{k} {phase[k]}" for k in ("requests", "canary", "failed outside canary", "failed canary")))


print(f"{args.clients} clients, --workers {args.workers} --canary {args.canary} --canary-requests {args.canary_requests} "
      f"--eval-timeout {args.eval_timeout}; eddy {args.eddy}")
print(phase_line("baseline", baseline, args.baseline_seconds) + f"  ({args.baseline_seconds:.0f} s, no build dropped)")
print(phase_line("soak", counts, args.seconds) + f"  ({args.seconds:.0f} s)")
print("dropped (s: build): " + ", ".join(f"{t}: {k}" for t, k in dropped))
print(f"soak / baseline: req/s ratio {counts['requests'] / args.seconds / (baseline['requests'] / args.baseline_seconds):.2f}")
print("canary runs:")
for run in report.get("canaries", []):
    print(f"  {run.get('summary')}")
print("metrics: " + ", ".join(f"{k} {v:g}" for k, v in sorted(metrics.items())))
for f in baseline["failures"] + counts["failures"]:
    print("  failed:", f)
shutil.rmtree(work, ignore_errors=True)
