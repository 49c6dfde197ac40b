"""Hot-reload benchmarks against a real `eddy serve`:

1. drop → visible: a rebuilt plugin is renamed into the watched directory; time until the server
   reports a new registry generation (the next context uses it). p50 / p99 over N drops.
2. throughput of a small POST /eval with two clients, without and with a plugin replaced every
   100 ms — ratio.

Usage: python Benchmarks/hot_reload.py [--eddy .build/release/eddy] [--build .build/release] [--drops 100]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import eddy_serve

ap = argparse.ArgumentParser()
ap.add_argument("--eddy", default=".build/release/eddy")
ap.add_argument("--build", default=None, help="directory holding libEddyPluginDelta.so and libEddyFixtureDeltaV2.so")
ap.add_argument("--drops", type=int, default=100)
ap.add_argument("--seconds", type=float, default=5)
args = ap.parse_args()
build = args.build or os.path.dirname(args.eddy)
v1 = os.path.join(build, "libEddyPluginDelta.so")
v2 = os.path.join(build, "libEddyFixtureDeltaV2.so")

work = tempfile.mkdtemp()
plugins = os.path.join(work, "plugins")
os.mkdir(plugins)
csv = os.path.join(work, "small.csv")
with open(csv, "w") as fh:
    fh.write("trip_id,city,fare\n")
    for i in range(200):
        fh.write(f"{100000 + i},{['Lyon', 'Paris', 'Nice'][i % 3]},{i % 40}\n")

server = subprocess.Popen([args.eddy, "serve", "--port", "0", "--plugin-dir", plugins, "--rescan", "5",
                           "--data-dir", work],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
port = None
auth = {}
while port is None:
    line = server.stderr.readline()
    # The server names its token file (a fresh token per start) before it listens.
    auth = eddy_serve.auth_headers(eddy_serve.token_from_log(line)) or auth
    if "listening on 127.0.0.1:" in line:
        port = int(line.rsplit(":", 1)[1])
threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
base = f"http://127.0.0.1:{port}"


def get(path):
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=auth), timeout=30) as r:
        return json.loads(r.read())


def evaluate():
    body = json.dumps({"path": csv, "where": "city = 'Lyon' and trip_id > 100050", "select": "count(*)"}).encode()
    req = urllib.request.Request(base + "/eval", data=body, headers={"Content-Type": "application/json", **auth})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.loads(r.read())
        assert out["result"] == [{"count(*)": 50}], out
        return out


def drop(source):
    tmp = os.path.join(plugins, ".incoming.so")
    shutil.copyfile(source, tmp)
    os.rename(tmp, os.path.join(plugins, "delta.so"))


# 1. drop -> visible
latencies = []
for k in range(args.drops):
    before = get("/health")["generation"]
    t0 = time.perf_counter()
    drop(v1 if k % 2 == 0 else v2)
    while get("/health")["generation"] == before:
        pass
    latencies.append((time.perf_counter() - t0) * 1000)
latencies.sort()
p50 = latencies[len(latencies) // 2]
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
print(f"drop -> visible in next context ({args.drops} drops): p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 <= 50 ms)")


# 2. throughput with and without a replace every 100 ms
def throughput(replacing: bool) -> float:
    stop = threading.Event()
    counts = [0, 0]

    def client(i):
        while not stop.is_set():
            evaluate()
            counts[i] += 1

    def replacer():
        k = 0
        while not stop.is_set():
            drop(v1 if k % 2 == 0 else v2)
            k += 1
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    if replacing:
        threads.append(threading.Thread(target=replacer))
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / args.seconds


quiet = throughput(False)
busy = throughput(True)
print(f"small /eval, 2 clients: {quiet:.0f} req/s; with a plugin replace every 100 ms: {busy:.0f} req/s; "
      f"ratio {busy / quiet:.2f} (target >= 0.95)")
print(f"retained images after the run: {get('/plugins')['retained_images']}")
server.terminate()
server.wait(timeout=10)
