"""Per-request latency of a warm `eddy serve` on an .eddy file: the race's native-lane queries sent over
one kept-alive connection, through Python's http.client and (for the same bytes) through a raw socket,
so that the client's share of a small request shows. Medians of --requests per query, after a warm-up.

Usage: python Benchmarks/serve_latency.py --file race.eddy [--eddy .build/release/eddy] [--requests 500]
       [--serve-args '--workers 0']
Convert the race table first: eddy convert race.csv race.eddy (Benchmarks/race.py writes race.csv).
"""
import argparse
import http.client
import json
import os
import tempfile
import time

import eddy_serve

ap = argparse.ArgumentParser()
ap.add_argument("--file", required=True, help="an .eddy file of the race table")
ap.add_argument("--eddy", default=".build/release/eddy")
ap.add_argument("--requests", type=int, default=500)
ap.add_argument("--serve-args", default="")
args = ap.parse_args()

path = os.path.abspath(args.file)
QUERIES = [
    ("health", None, None),
    ("count", None, "count(*)"),
    ("filter+sum", "carrier = 'AF' and dep_delay > 60", "count(*), sum(distance)"),
    ("like+agg", "origin like 'L%'", "max(arr_delay), mean(air_time)"),
    ("arith", None, "sum(arr_delay - dep_delay)"),
    ("project", "dep_delay > 290", "id, tail, note"),
]

server, port = eddy_serve.start(args.eddy, tempfile.mkdtemp(), os.path.dirname(path), args.serve_args.split())
try:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lean = eddy_serve.SocketClient(port, token=server.token)
    auth = eddy_serve.auth_headers(server.token)

    def median(f):
        for _ in range(20):
            f()
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2] * 1000

    print(f"eddy serve on {path} ({os.cpu_count()} threads per request) {args.serve_args}".rstrip())
    print(f"{'query':<12}{'http.client':>14}{'raw socket':>14}")
    for name, where, select in QUERIES:
        if select is None:
            def via_client():
                conn.request("GET", "/health")
                conn.getresponse().read()

            def via_socket():
                lean.get("/health")
        else:
            body = {"path": path, "select": select, "threads": os.cpu_count(), "format": "csv"}
            if where:
                body["where"] = where
            payload = json.dumps(body).encode()

            def via_client(payload=payload):
                conn.request("POST", "/eval", payload, {"Content-Type": "application/json", **auth})
                reply = conn.getresponse()
                data = reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"eddy serve answered {reply.status}: {data[:300]!r}")

            def via_socket(payload=payload):
                status, data = lean.post("/eval", payload)
                if status != 200:
                    raise RuntimeError(f"eddy serve answered {status}: {data[:300]!r}")
        print(f"{name:<12}{median(via_client):>11.3f} ms{median(via_socket):>11.3f} ms")
finally:
    server.terminate()
    server.wait()
