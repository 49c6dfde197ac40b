"""Two builds of `eddy serve` side by side on one .eddy file: the race's native-lane queries sent to
each, request by request in turn (A, B, A, B, ...), so that load that drifts during the run falls on
both alike. Prints the median per query of each and B/A.

Usage: python Benchmarks/serve_ab.py --a OLD/eddy --b NEW/eddy --file race.eddy [--requests 400]
Convert the race table first: eddy convert race.csv race.eddy (Benchmarks/race.py writes race.csv).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import eddy_serve

ap = argparse.ArgumentParser()
ap.add_argument("--a", required=True, help="the baseline eddy executable")
ap.add_argument("--b", required=True, help="the eddy executable compared with it")
ap.add_argument("--file", required=True, help="an .eddy file of the race table")
ap.add_argument("--requests", type=int, default=400)
args = ap.parse_args()

path = os.path.abspath(args.file)
QUERIES = [
    ("count", None, "count(*)"),
    ("filter+sum", "carrier = 'AF' and dep_delay > 60", "count(*), sum(distance)"),
    ("like+agg", "origin like 'L%'", "max(arr_delay), mean(air_time)"),
    ("arith", None, "sum(arr_delay - dep_delay)"),
    ("project", "dep_delay > 290", "id, tail, note"),
    ("compare", "carrier = 'AF'", "count(*)"),
]

servers = []
try:
    for exe in (args.a, args.b):
        server, port = eddy_serve.start(exe, tempfile.mkdtemp(), os.path.dirname(path), [])
        servers.append((server, eddy_serve.SocketClient(port, token=server.token)))
    print(f"A = {args.a}\nB = {args.b}\nmedian of {args.requests} requests per query, alternated")
    for name, where, select in QUERIES:
        body = {"path": path, "select": select, "threads": os.cpu_count(), "format": "csv"}
        if where:
            body["where"] = where
        payload = json.dumps(body).encode()
        answers = []
        for _, client in servers:
            for _ in range(20):
                status, data = client.post("/eval", payload)
            answers.append(json.loads(data)["result"])
        if answers[0] != answers[1]:
            raise RuntimeError(f"{name}: the two builds answered differently")
        times = [[], []]
        for _ in range(args.requests):
            for k, (_, client) in enumerate(servers):
                t = time.perf_counter()
                status, data = client.post("/eval", payload)
                times[k].append(time.perf_counter() - t)
                if status != 200:
                    raise RuntimeError(f"eddy serve answered {status}: {data[:300]!r}")
        a, b = (statistics.median(t) * 1000 for t in times)
        print(f"{name:<12} A {a:7.3f} ms  B {b:7.3f} ms  B/A {b / a:5.2f}")
finally:
    for server, _ in servers:
        server.terminate()
        server.wait()
