"""What verification at load (`--verify`) costs a one-shot command, per plugin.

For each plugin file given (default: the bundled delta and packed-dict plugins next to --eddy), in a
directory of its own, times `eddy plugins --plugin-dir DIR` as whole processes:

- first load at each level (off, quick, full): a fresh private-copy directory, so the probe runs
  (and with it the verification);
- second load at quick: the same private-copy directory, so the kept verdict is used.

Each figure is the median of --runs runs; the cost of verification is first(quick) - first(off),
and the second run's cost is second(quick) - second(off).

Usage: python Benchmarks/verify_at_load.py [--eddy .build/release/eddy] [--runs 5] [PLUGIN.so ...]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--eddy", default=".build/release/eddy")
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("plugins", nargs="*")
args = ap.parse_args()
build = os.path.dirname(args.eddy)
plugins = args.plugins or [
    os.path.join(build, "libEddyPluginDelta.so"),
    os.path.join(build, "libEddyPluginPackedDictCompare.so"),
]


def run(directory, shadow, level):
    env = dict(os.environ, EDDY_SHADOW_DIR=shadow)
    start = time.perf_counter()
    p = subprocess.run(
        [args.eddy, "plugins", "--plugin-dir", directory, "--json", "--verify", level],
        env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    row = json.loads(p.stdout)["files"][0] if p.stdout.startswith("{") else {}
    return elapsed, row


print(f"{'plugin':<40} {'level':<6} {'first ms':>9} {'again ms':>9} {'verified inputs':>16}")
for plugin in plugins:
    work = tempfile.mkdtemp()
    directory = os.path.join(work, "plugins")
    os.mkdir(directory)
    shutil.copy(plugin, directory)
    first = {}
    again = {}
    inputs = {}
    for level in ["off", "quick", "full"]:
        firsts, agains = [], []
        for _ in range(args.runs):
            shadow = tempfile.mkdtemp()
            t, row = run(directory, shadow, level)
            firsts.append(t)
            t2, _ = run(directory, shadow, level)
            agains.append(t2)
            inputs[level] = row.get("verified_inputs", row.get("reason", "")[:60] or "-")
            shutil.rmtree(shadow)
        first[level] = statistics.median(firsts) * 1000
        again[level] = statistics.median(agains) * 1000
        print(f"{os.path.basename(plugin):<40} {level:<6} {first[level]:>9.1f} {again[level]:>9.1f} {inputs[level]!s:>16}")
    print(
        f"{'':<40} quick costs {first['quick'] - first['off']:+.1f} ms on the first load, "
        f"{again['quick'] - again['off']:+.1f} ms on the next; full {first['full'] - first['off']:+.1f} ms")
    shutil.rmtree(work)
