"""Starting a warm `eddy serve` for the benchmark scripts (race.py's native lane, serve_latency.py)."""
import socket
import subprocess
import time
import urllib.request


def start(eddy, plugin_dir, data_dir, extra_args=()):
    """`eddy serve` on a free loopback port, its plugin directory `plugin_dir` and data directory
    `data_dir`, once /health answers; returns (process, port). Its output is discarded."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [eddy, "serve", "--port", str(port), "--plugin-dir", plugin_dir, "--data-dir", data_dir, "--rescan", "60"]
        + list(extra_args),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    return server, port
