"""Isolation costs: small /eval requests (a 100-row CSV upload, count(*)) against `eddy serve` with
evaluation in worker processes (the default) and in the server's own process (--workers 0), in one
run, alternating rounds. Prints requests per second and latency percentiles, and the ratios.

    swift build -c release && python3 Benchmarks/isolation.py --eddy .build/release/eddy

With --shadow-check RATE the two servers compared are both isolated, one checking RATE of the requests
in which plugin code took part (`eddy serve --shadow-check`), the other none; give a plugin whose code
fires on the query (--plugin, --where), e.g. the Decimal fixture, whose hook encodes the fares (they
have cents) and whose compare kernel answers `fare > 12.5`:

    python3 Benchmarks/isolation.py --eddy .build/release/eddy --shadow-check 0.05 \
        --plugin /tmp/libDecimal.so --where 'fare > 12.5'

With --confinement a third server runs its workers with `--no-confine` (plugin code with the server's
rights, as before confinement), and the cost of confining workers is printed as a ratio too.
"""
import argparse, http.client, os, shutil, statistics, subprocess, tempfile, threading, time, urllib.parse, urllib.request

import eddy_serve

parser = argparse.ArgumentParser()
parser.add_argument("--eddy", required=True)
parser.add_argument("--seconds", type=float, default=4.0, help="per round")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--clients", type=int, default=2)
parser.add_argument("--workers", default="2")
parser.add_argument("--shadow-check", help="compare --shadow-check 0 with this rate (both with --workers)")
parser.add_argument("--plugin", help="a plugin .so to put in the plugin directory")
parser.add_argument("--where", help="a where clause for every request (so that a plugin kernel fires)")
parser.add_argument("--verify", default=None, help="passed to eddy serve as --verify")
parser.add_argument("--confinement", action="store_true", help="also run workers with --no-confine and compare")
args = parser.parse_args()

work = tempfile.mkdtemp()
plugins = os.path.join(work, "plugins")
os.makedirs(plugins)
if args.plugin:
    shutil.copy(args.plugin, os.path.join(plugins, os.path.basename(args.plugin)))
# Fares with cents when a plugin is given: a float column, for float encodings' hooks to take.
fare = (lambda i: f"{i % 40}.{i % 100:02d}") if args.plugin else (lambda i: f"{i % 40}")
body = "trip_id,city,fare\n" + "".join(f"{100000 + i},{['Lyon', 'Paris', 'Nice'][i % 3]},{fare(i)}\n" for i in range(100))
body = body.encode()
query = "/eval?select=count(*)" + (f"&where={urllib.parse.quote(args.where)}" if args.where else "")


def start(workers, shadow=None, more=()):
    extra = (["--shadow-check", shadow] if shadow else []) + (["--verify", args.verify] if args.verify else [])
    extra += list(more)
    p = subprocess.Popen([args.eddy, "serve", "--port", "0", "--plugin-dir", plugins, "--workers", workers] + extra,
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    auth = {}
    while True:
        line = p.stderr.readline()
        # The server names its token file (a fresh token per start) before it listens.
        auth = eddy_serve.auth_headers(eddy_serve.token_from_log(line)) or auth
        if "listening on 127.0.0.1:" in line:
            port = int(line.rsplit(":", 1)[1])
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, (port, auth)


def run(server, seconds):
    port, auth = server
    latencies = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port)
        mine = []
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("POST", query, body=body, headers={"Content-Type": "text/csv", **auth})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return len(latencies) / seconds, latencies


if args.shadow_check:
    servers = {"no check": start(args.workers), f"check {args.shadow_check}": start(args.workers, args.shadow_check)}
else:
    servers = {"workers": start(args.workers), "in-process": start("0")}
    if args.confinement:
        servers["unconfined"] = start(args.workers, more=["--no-confine"])
results = {k: ([], []) for k in servers}
for name, (_, port) in servers.items():
    run(port, 1.0)  # warm-up
for _ in range(args.rounds):
    for name, (_, port) in servers.items():
        rps, lat = run(port, args.seconds)
        results[name][0].append(rps)
        results[name][1].extend(lat)

def shadow_metrics(server):
    port, auth = server
    text = urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=auth)).read()
    found = {}
    for line in text.decode().splitlines():
        if line.startswith(("eddy_shadow", "eddy_quarantines")):
            name, value = line.split()
            found[name] = float(value)
    return found


checked = {name: shadow_metrics(server) for name, (_, server) in servers.items()} if args.shadow_check else {}
for p, _ in servers.values():
    p.terminate()
    p.wait(timeout=10)

where = f" where {args.where}" if args.where else ""
print(f"{args.clients} clients, {args.rounds} rounds of {args.seconds} s, 100-row upload + count(*){where}")
print(f"{'':12} {'req/s (median round)':>22} {'p50 ms':>8} {'p99 ms':>8}")
summary = {}
for name, (rps, lat) in results.items():
    lat.sort()
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[int(len(lat) * 0.99)] * 1000
    summary[name] = (statistics.median(rps), p50)
    print(f"{name:12} {statistics.median(rps):22.0f} {p50:8.3f} {p99:8.3f}")
if args.shadow_check:
    (base, b), (name, c) = list(summary.items())
    for n, m in checked.items():
        print(f"{n}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(m.items())))
    print(f"{name} / {base}: req/s ratio {c[0] / b[0]:.3f}, p50 overhead {c[1] - b[1]:+.3f} ms")
else:
    w, i = summary["workers"], summary["in-process"]
    print(f"workers / in-process: req/s ratio {w[0] / i[0]:.2f}, p50 overhead {w[1] - i[1]:+.3f} ms")
    # The same rounds paired: each round's ratio against the other server's round right after it, the
    # median of those. Less moved by a machine whose load changes during the run (other builds).
    paired = lambda a, b: statistics.median(x / y for x, y in zip(results[a][0], results[b][0]))
    print(f"workers / in-process, paired rounds: req/s ratio {paired('workers', 'in-process'):.2f}")
    if args.confinement:
        u = summary["unconfined"]
        print(f"unconfined workers / in-process: req/s ratio {u[0] / i[0]:.2f}")
        print(f"workers (confined) / unconfined: req/s ratio {w[0] / u[0]:.3f}, p50 overhead {w[1] - u[1]:+.3f} ms")
        print(f"workers (confined) / unconfined, paired rounds: req/s ratio {paired('workers', 'unconfined'):.3f}")
