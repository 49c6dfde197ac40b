"""Differential test: `eddy eval` as a process against DuckDB on the same generated CSV files.

Each dataset is seeded; each query is a (where, select) pair evaluated by both engines. Results are
compared as values (floats with a relative tolerance), rows ordered by the `id` column or sorted.
Run: EDDY_BIN=.build/debug/eddy python -m pytest Tests/Differential
"""
import csv
import json
import math
import os
import random
import subprocess
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
EDDY = os.environ.get("EDDY_BIN", str(ROOT / ".build" / "debug" / "eddy"))

WORDS = ["alpha", "beta", "gamma", "Zürich", "日本語", "emoji 🙂", "a,b", 'quote "q"', "multi\nline", "x" * 300]

SCHEMA = {"id": "BIGINT", "k": "BIGINT", "v": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN"}


def make_dataset(path: Path, seed: int, n: int, skewed: bool) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(list(SCHEMA))
        run_value = 0
        for i in range(n):
            if skewed:
                if rng.random() < 0.05:
                    run_value = rng.randint(-50, 50)
                k = run_value
                v = rng.choice([0, 0, 0, 1, rng.randint(-10**6, 10**6)])
                s = WORDS[min(int(rng.expovariate(0.7)), len(WORDS) - 1)]
            else:
                k = rng.randint(-1000, 1000)
                v = rng.randint(-10**9, 10**9)
                s = rng.choice(WORDS)
            f = round(rng.uniform(-500, 500), 3)
            b = rng.random() < 0.4
            row = [i, k, v, f, s, "true" if b else "false"]
            # Nulls: empty unquoted fields (not in id).
            for c in range(1, 6):
                if rng.random() < 0.08:
                    row[c] = ""
            w.writerow(row)


DATASETS = [("uniform", 1, 3000, False), ("skewed", 2, 4000, True), ("small", 3, 40, False)]

# (where, select) pairs; None = no clause. Row queries select `id` first so rows can be matched.
QUERIES = [
    ("k > 10", "id, k, v"),
    ("k >= -5 and k < 5", "id, s"),
    ("k = 0 or v = 0", "id, k, v"),
    ("not (k > 0)", "id, k"),
    ("k is null", "id, v"),
    ("k is not null and v is null", "id, k"),
    ("s = 'alpha'", "id, s, k"),
    ("s != 'beta'", "id, s"),
    ("s < 'gamma'", "id, s"),
    ("s >= 'Zürich'", "id, s"),
    ("s like 'a%'", "id, s"),
    ("s like '%a'", "id, s"),
    ("s like '%ü%'", "id, s"),
    ("s like '_eta'", "id, s"),
    ("s not like '%a%'", "id, s"),
    ("b", "id, b"),
    ("not b", "id, b, k"),
    ("b and k > 0", "id, k"),
    ("b or s = 'gamma'", "id, s, b"),
    ("f > 100.5", "id, f"),
    ("f <= -250", "id, f, k"),
    ("f * 2 > k", "id, f, k"),
    ("k + 10 > 20", "id, k"),
    ("k - v < 0", "id, k, v"),
    ("k * 3 = 0", "id, k"),
    ("-k > 5", "id, k"),
    ("cast(k as f64) > 2.5", "id, k"),
    ("cast(f as i64) = 0", "id, f"),
    ("coalesce(k, 0) = 0", "id, k"),
    ("k > 0", "id, k + 1, k * 2, -k, f / 4"),
    ("v is not null", "id, v - k"),
    ("s is not null", "id, cast(k as utf8)"),
    (None, "id, coalesce(s, 'none')"),
    (None, "count(*)"),
    (None, "count(k), count(s), count(b)"),
    (None, "sum(k), sum(v)"),
    (None, "min(k), max(k), min(v), max(v)"),
    (None, "min(s), max(s)"),
    (None, "mean(k), mean(f)"),
    (None, "sum(v - k), mean(k + v), count(v - k), sum(id - k), sum(id + id)"),
    ("k > 0", "sum(v - k), mean(v + k)"),
    (None, "sum(f), min(f), max(f)"),
    ("k > 0", "count(*), sum(k), mean(v)"),
    ("s = 'alpha'", "count(*), min(f), max(f)"),
    ("b", "count(*), sum(k)"),
    ("k is null", "count(*), count(k), sum(k)"),
    ("s like '%a%' and f > 0", "count(*), sum(f)"),
    ("k = 12345678", "count(*), sum(k), min(k), mean(k)"),
    ("k > 0 or k is null", "count(*), count(k)"),
    ("v > 0 and v < 1000", "min(v), max(v)"),
    ("f > 0", "min(s), max(s), count(s)"),
    ("not b and s is not null", "count(*), min(k)"),
    ("k between_placeholder", None),
    ("id < 10", "id, k, v, f, s, b"),
    ("id >= 35", "*"),
    ("(k > 0 and v > 0) or (k < 0 and v < 0)", "id, k, v"),
    ("s = 'a,b' or s = 'quote \"q\"'", "id, s"),
    ("s = 'multi\nline'", "id, s"),
    ("cast(b as i64) = 1", "id, b"),
    # coalesce meets its arguments' common type (f64 here), not the first one's (i64 cut 2.7 to 2).
    ("coalesce(k, f) > 2.5", "id, coalesce(k, f), coalesce(f, k)"),
    (None, "id, coalesce(k, 2.5), coalesce(k, v, 0)"),
    # An integer column met by a number its type cannot hold compares exactly (not as f64 or i64).
    ("k > 2.5 and k <= 40.5", "id, k"),
    ("k >= -3.5 or k = 7.5", "id, k"),
    ("2.5 < k and k != 10.5", "count(*), sum(k)"),
    ("v > 1e30 or v < -1e30 or k > 18446744073709551615", "count(*)"),
    ("v != 1e30 and k > -1e19", "count(*), count(v)"),
]
QUERIES = [(w, s) for (w, s) in QUERIES if s is not None]

TO_SQL = {"mean(": "avg(", "cast(k as f64)": "cast(k as double)", "cast(f as i64)": "trunc(f)::bigint",
          "cast(k as utf8)": "cast(k as varchar)", "cast(b as i64)": "cast(b as bigint)", "f / 4": "f / 4.0"}


def to_sql(expr: str) -> str:
    for a, b in TO_SQL.items():
        expr = expr.replace(a, b)
    return expr


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("eddy-diff")
    for name, seed, n, skewed in DATASETS:
        p = d / f"{name}.csv"
        make_dataset(p, seed, n, skewed)
        out[name] = p
    return out


def run_eddy(path: Path, where, select, extra=("--batch-rows", "1000")):
    args = [EDDY, "eval", str(path), "--format", "json", *extra]
    if where:
        args += [f"--where={where}"]
    if select and select != "*":
        args += [f"--select={select}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"eddy failed ({p.returncode}): {p.stderr}"
    rows = json.loads(p.stdout)
    return [tuple(r.values()) for r in rows]


def run_duckdb(path: Path, where, select):
    con = duckdb.connect()
    con.execute("SET threads=1")
    cols = ", ".join(f"'{k}': '{v}'" for k, v in SCHEMA.items())
    src = f"read_csv('{path}', header=true, columns={{{cols}}}, allow_quoted_nulls=false)"
    sql = f"SELECT {to_sql(select) if select != '*' else '*'} FROM {src}"
    if where:
        sql += f" WHERE {to_sql(where)}"
    return con.execute(sql).fetchall()


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def normalize(rows, keyed: bool):
    rows = [tuple(r) for r in rows]
    key = (lambda r: r[0]) if keyed else (lambda r: tuple((x is None, str(x)) for x in r))
    return sorted(rows, key=key)


@pytest.mark.parametrize("dataset", [d[0] for d in DATASETS])
@pytest.mark.parametrize("where,select", QUERIES, ids=[f"{w} | {s}" for w, s in QUERIES])
def test_eval_matches_duckdb(datasets, dataset, where, select):
    path = datasets[dataset]
    ours = run_eddy(path, where, select)
    theirs = run_duckdb(path, where, select)
    keyed = select == "*" or select.startswith("id")
    ours, theirs = normalize(ours, keyed), normalize(theirs, keyed)
    assert len(ours) == len(theirs), f"{len(ours)} rows from eddy, {len(theirs)} from duckdb"
    for r1, r2 in zip(ours, theirs):
        assert len(r1) == len(r2) and all(same(x, y) for x, y in zip(r1, r2)), f"eddy {r1} != duckdb {r2}"


# The same queries over .eddy files converted from the same CSV: without plugins (built-in encodings
# only) and with the ext.delta plugin loaded (its compressor hook stores increasing ids as ext.delta,
# so its storage round-trips through the file). Zone maps on and off must give the same rows.
def plugin_dir(tmp_path_factory, with_delta: bool) -> Path:
    d = tmp_path_factory.mktemp("plugins-delta" if with_delta else "plugins-none")
    os.chmod(d, 0o700)
    if with_delta:
        so = Path(EDDY).parent / "libEddyPluginDelta.so"
        data = so.read_bytes()
        (d / so.name).write_bytes(data)
        os.chmod(d / so.name, 0o644)
    return d


@pytest.fixture(scope="module")
def converted(datasets, tmp_path_factory):
    out = {}
    for plugins in ("none", "delta"):
        pdir = plugin_dir(tmp_path_factory, plugins == "delta")
        d = tmp_path_factory.mktemp(f"eddy-files-{plugins}")
        for name, path in datasets.items():
            target = d / f"{name}.eddy"
            p = subprocess.run(
                [EDDY, "convert", str(path), str(target), "--chunk-rows", "700", "--plugin-dir", str(pdir)],
                capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, f"convert failed: {p.stderr}"
            out[(plugins, name)] = (target, pdir)
    return out


def run_eddy_file(target: Path, pdir: Path, where, select, zone_maps=True):
    extra = ["--plugin-dir", str(pdir)] + ([] if zone_maps else ["--no-zone-maps"])
    return run_eddy(target, where, select, extra)


@pytest.mark.parametrize("plugins", ["none", "delta"])
@pytest.mark.parametrize("dataset", [d[0] for d in DATASETS])
@pytest.mark.parametrize("where,select", QUERIES, ids=[f"{w} | {s}" for w, s in QUERIES])
def test_eddy_file_matches_duckdb(datasets, converted, plugins, dataset, where, select):
    target, pdir = converted[(plugins, dataset)]
    ours = run_eddy_file(target, pdir, where, select)
    theirs = run_duckdb(datasets[dataset], where, select)
    keyed = select == "*" or select.startswith("id")
    ours_n, theirs_n = normalize(ours, keyed), normalize(theirs, keyed)
    assert len(ours_n) == len(theirs_n), f"{len(ours_n)} rows from eddy, {len(theirs_n)} from duckdb"
    for r1, r2 in zip(ours_n, theirs_n):
        assert len(r1) == len(r2) and all(same(x, y) for x, y in zip(r1, r2)), f"eddy {r1} != duckdb {r2}"
    if where:
        # Zone maps skip chunks; reading every chunk must give exactly the same rows, in the same order.
        assert run_eddy_file(target, pdir, where, select, zone_maps=False) == ours
