"""Differential test: `eddy eval FILE.parquet` against DuckDB reading the same Parquet file.

Files are written at test time by pyarrow (every codec, dictionary and plain, each DELTA_* encoding and
BYTE_STREAM_SPLIT, data page v1 and v2, with and without nulls, several row-group and page sizes), by
polars and by DuckDB, from one seeded table. Each query runs through the real `eddy` binary and through
DuckDB on the same file; answers are compared as values. Then `--format arrow` is read back by pyarrow
and compared with the CSV output of the same query.
Run: EDDY_BIN=.build/debug/eddy python -m pytest Tests/Differential/test_parquet_vs_duckdb.py
"""
import csv
import io
import json
import math
import os
import random
import subprocess
from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
duckdb = pytest.importorskip("duckdb")

ROOT = Path(__file__).resolve().parents[2]
EDDY = os.environ.get("EDDY_BIN", str(ROOT / ".build" / "debug" / "eddy"))

WORDS = ["alpha", "beta", "gamma", "Zürich", "日本語", "emoji 🙂", "a,b", 'quote "q"', "multi\nline", "x" * 300, ""]


def make_table(seed: int, n: int, nulls: bool):
    rng = random.Random(seed)

    def maybe(v):
        return None if nulls and rng.random() < 0.1 else v

    cols = {
        "id": pa.array(range(n), pa.int64()),
        "i8": pa.array([maybe(rng.randint(-128, 127)) for _ in range(n)], pa.int8()),
        "i16": pa.array([maybe(rng.randint(-32768, 32767)) for _ in range(n)], pa.int16()),
        "i32": pa.array([maybe(rng.randint(-2**31, 2**31 - 1)) for _ in range(n)], pa.int32()),
        "i64": pa.array([maybe(rng.choice([0, 1, -1, rng.randint(-2**62, 2**62)])) for _ in range(n)], pa.int64()),
        "u8": pa.array([maybe(rng.randint(0, 255)) for _ in range(n)], pa.uint8()),
        "u16": pa.array([maybe(rng.randint(0, 65535)) for _ in range(n)], pa.uint16()),
        "u32": pa.array([maybe(rng.randint(0, 2**32 - 1)) for _ in range(n)], pa.uint32()),
        "u64": pa.array([maybe(rng.randint(0, 2**63 - 1)) for _ in range(n)], pa.uint64()),
        "k": pa.array([maybe(rng.randint(-20, 20)) for _ in range(n)], pa.int32()),
        "f32": pa.array([maybe(round(rng.uniform(-100, 100), 2)) for _ in range(n)], pa.float32()),
        "f64": pa.array([maybe(rng.uniform(-1e6, 1e6)) for _ in range(n)], pa.float64()),
        "s": pa.array([maybe(WORDS[min(int(rng.expovariate(0.5)), len(WORDS) - 1)]) for _ in range(n)], pa.string()),
        "b": pa.array([maybe(rng.random() < 0.4) for _ in range(n)], pa.bool_()),
        "d": pa.array([maybe(rng.randint(0, 20000)) for _ in range(n)], pa.int32()).cast(pa.date32()),
        "ts": pa.array([maybe(rng.randint(0, 2**50)) for _ in range(n)], pa.int64()).cast(pa.timestamp("us")),
    }
    schema = pa.schema([pa.field(k, v.type, nullable=(k != "id")) for k, v in cols.items()])
    return pa.table(cols, schema=schema)


# (name, writer keyword arguments) for pyarrow; every codec, encoding and page version appears.
PYARROW_VARIANTS = [
    ("plain-none-v1", dict(compression="none", use_dictionary=False)),
    ("dict-snappy-v1", dict(compression="snappy", row_group_size=700)),
    ("dict-gzip-v2", dict(compression="gzip", data_page_version="2.0", row_group_size=1500)),
    ("plain-zstd-v2", dict(compression="zstd", use_dictionary=False, data_page_version="2.0")),
    ("dict-lz4-smallpages", dict(compression="lz4", data_page_size=512, row_group_size=900)),
    ("plain-brotli-smallpages-v2", dict(compression="brotli", use_dictionary=False, data_page_size=700,
                                        data_page_version="2.0")),
    ("dict-fallback", dict(compression="snappy", dictionary_pagesize_limit=256, data_page_size=256)),
    ("delta", dict(compression="zstd", use_dictionary=False, column_encoding={
        "id": "DELTA_BINARY_PACKED", "i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED",
        "u16": "DELTA_BINARY_PACKED", "k": "DELTA_BINARY_PACKED", "s": "DELTA_BYTE_ARRAY",
        "f32": "BYTE_STREAM_SPLIT", "f64": "BYTE_STREAM_SPLIT"})),
    ("delta-length-v2", dict(compression="snappy", use_dictionary=False, data_page_version="2.0",
                             data_page_size=600, column_encoding={
                                 "s": "DELTA_LENGTH_BYTE_ARRAY", "i8": "DELTA_BINARY_PACKED",
                                 "u64": "DELTA_BINARY_PACKED", "d": "DELTA_BINARY_PACKED",
                                 "ts": "DELTA_BINARY_PACKED", "b": "RLE"})),
    ("rowgroups-of-100", dict(compression="snappy", row_group_size=100)),
    # A page index over small pages (a page every 32 to 64 rows), several row groups: page statistics skip
    # the pages of the sorted id (and of every other column read) that a filter on it rules out.
    ("pageindex-dict-v1", dict(compression="snappy", write_page_index=True, data_page_size=256, write_batch_size=32,
                               row_group_size=1100)),
    ("pageindex-plain-v2", dict(compression="zstd", use_dictionary=False, data_page_version="2.0",
                                write_page_index=True, data_page_size=512, write_batch_size=64, row_group_size=1300)),
]

QUERIES = [
    (None, "count(*)"),
    (None, "count(i8), sum(i8), min(i8), max(i8)"),
    (None, "sum(i16), min(i32), max(i32), sum(i64), min(i64), max(i64)"),
    (None, "sum(u8), sum(u16), min(u32), max(u32), min(u64), max(u64)"),
    (None, "count(s), min(s), max(s), count(b)"),
    (None, "sum(f32), min(f64), max(f64), mean(f64)"),
    (None, "min(d), max(d), min(ts), max(ts)"),
    ("k > 10", "id, k, i8, u8"),
    ("k = 0 or k is null", "id, k, s"),
    ("s = 'alpha'", "id, s, b"),
    ("s != 'beta' and s is not null", "id, s"),
    ("s like '%ü%' or s = ''", "id, s"),
    ("s >= 'gamma'", "id, s"),
    ("b", "id, b, f32"),
    ("not b and i16 < 0", "id, i16"),
    ("u32 > 3000000000", "id, u32"),
    ("u64 < 1000000000000000000", "id, u64"),
    ("i64 = 0", "count(*), sum(k)"),
    ("f64 > 250000.5", "id, f64"),
    ("id < 5 or id >= 2990", "id, i8, i16, i32, i64, u8, u16, u32, u64, k, f32, f64, s, b, d, ts"),
    ("id between_placeholder", None),
    ("d > 10000", "count(*), min(d)"),
    ("ts < 100000000000000", "id, ts"),
    ("id >= 1000 and id < 1100", "count(*), sum(id), sum(k)"),
    # Selective on the sorted id with late columns, nulls and an unsorted column: pages skipped inside row groups.
    ("id >= 1210 and id < 1260 and (k > 0 or k is null)", "id, k, s, f64, b, u32"),
    ("(id < 40 or id > 2900) and s is not null", "id, s, i8, u64"),
    ("id > 1500 and id < 1600 and i16 is null", "count(*), sum(id), min(s)"),
]
QUERIES = [(w, s) for (w, s) in QUERIES if s is not None]

# Eddy reads dates as days and timestamps as integers in their unit.
TO_SQL = {"mean(": "avg(", "min(d)": "min(d - DATE '1970-01-01')", "max(d)": "max(d - DATE '1970-01-01')",
          "min(ts)": "min(epoch_us(ts))", "max(ts)": "max(epoch_us(ts))", "d > 10000": "d > DATE '1970-01-01' + 10000",
          "ts < 100000000000000": "epoch_us(ts) < 100000000000000", ", d, ts": ", d - DATE '1970-01-01', epoch_us(ts)",
          "id, ts": "id, epoch_us(ts)"}


def to_sql(expr: str) -> str:
    for a, b in TO_SQL.items():
        expr = expr.replace(a, b)
    return expr


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("parquet")
    out = {}
    table = make_table(7, 3000, nulls=True)
    dense = make_table(8, 3000, nulls=False)
    for name, kw in PYARROW_VARIANTS:
        p = d / f"pyarrow-{name}.parquet"
        pq.write_table(table, p, **kw)
        out[f"pyarrow-{name}"] = p
    p = d / "pyarrow-no-nulls.parquet"
    pq.write_table(dense, p, compression="snappy", row_group_size=1000)
    out["pyarrow-no-nulls"] = p
    p = d / "pyarrow-no-nulls-plain-v2.parquet"
    pq.write_table(dense, p, compression="none", use_dictionary=False, data_page_version="2.0")
    out["pyarrow-no-nulls-plain-v2"] = p
    try:
        import polars as pl
        frame = pl.from_arrow(table)
        for codec in ("snappy", "zstd", "uncompressed"):
            p = d / f"polars-{codec}.parquet"
            frame.write_parquet(p, compression=codec, row_group_size=1000, statistics=True)
            out[f"polars-{codec}"] = p
    except ImportError:
        pass
    con = duckdb.connect()
    con.register("t", table)
    for codec in ("snappy", "zstd", "uncompressed"):
        p = d / f"duckdb-{codec}.parquet"
        con.execute(f"COPY t TO '{p}' (FORMAT parquet, COMPRESSION {codec}, ROW_GROUP_SIZE 1024)")
        out[f"duckdb-{codec}"] = p
    return out


def run_eddy(path: Path, where, select, fmt="json", extra=()):
    args = [EDDY, "eval", str(path), "--format", fmt, *extra]
    if where:
        args += [f"--where={where}"]
    if select:
        args += [f"--select={select}"]
    p = subprocess.run(args, capture_output=True, timeout=120)
    assert p.returncode == 0, f"eddy failed ({p.returncode}): {p.stderr.decode()}"
    return p.stdout


def eddy_rows(path, where, select, extra=()):
    return [tuple(r.values()) for r in json.loads(run_eddy(path, where, select, extra=extra))]


def duckdb_rows(path: Path, where, select):
    con = duckdb.connect()
    sql = f"SELECT {to_sql(select)} FROM read_parquet('{path}')"
    if where:
        sql += f" WHERE {to_sql(where)}"
    return con.execute(sql).fetchall()


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def normalize(rows, keyed: bool):
    rows = [tuple(r) for r in rows]
    key = (lambda r: r[0]) if keyed else (lambda r: tuple((x is None, str(x)) for x in r))
    return sorted(rows, key=key)


FILES = [f"pyarrow-{n}" for n, _ in PYARROW_VARIANTS] + [
    "pyarrow-no-nulls", "pyarrow-no-nulls-plain-v2", "polars-snappy", "polars-zstd", "polars-uncompressed",
    "duckdb-snappy", "duckdb-zstd", "duckdb-uncompressed"]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("where,select", QUERIES, ids=[f"{w} | {s}" for w, s in QUERIES])
def test_parquet_matches_duckdb(files, name, where, select):
    if name not in files:
        pytest.skip(f"{name}: its writer is not installed")
    path = files[name]
    ours = eddy_rows(path, where, select)
    theirs = duckdb_rows(path, where, select)
    keyed = select.startswith("id")
    ours_n, theirs_n = normalize(ours, keyed), normalize(theirs, keyed)
    assert len(ours_n) == len(theirs_n), f"{len(ours_n)} rows from eddy, {len(theirs_n)} from duckdb"
    for r1, r2 in zip(ours_n, theirs_n):
        assert len(r1) == len(r2) and all(same(x, y) for x, y in zip(r1, r2)), f"eddy {r1} != duckdb {r2}"
    if where:
        # Row groups skipped by their statistics: reading all of them gives the same rows in the same order.
        assert eddy_rows(path, where, select, extra=["--no-zone-maps"]) == ours


def test_refusals_are_named(tmp_path):
    nested = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"id": [1, 2], "tags": [[1, 2], [3]]}), nested)
    p = subprocess.run([EDDY, "eval", str(nested), "--select", "count(*)"], capture_output=True, text=True)
    assert p.returncode == 1 and "tags" in p.stderr and "nested" in p.stderr and str(nested) in p.stderr, p.stderr
    decimal = tmp_path / "decimal.parquet"
    import decimal as dec
    pq.write_table(pa.table({"x": pa.array([dec.Decimal("1.5")], pa.decimal128(5, 1))}), decimal)
    p = subprocess.run([EDDY, "eval", str(decimal)], capture_output=True, text=True)
    assert p.returncode == 1 and "'x'" in p.stderr and "DECIMAL" in p.stderr, p.stderr
    int96 = tmp_path / "int96.parquet"
    pq.write_table(pa.table({"t": pa.array([0], pa.timestamp("ns"))}), int96, use_deprecated_int96_timestamps=True)
    p = subprocess.run([EDDY, "eval", str(int96)], capture_output=True, text=True)
    assert p.returncode == 1 and "'t'" in p.stderr and "INT96" in p.stderr, p.stderr


ARROW_QUERIES = [
    ("id < 40 or id > 2950", "id, i8, i16, i32, i64, u8, u16, u32, u64, k, f32, f64, s, b, d, ts"),
    ("s = 'alpha'", "id, s, k + 1, f64 * 2"),
    ("id > 100000", "id, s"),  # no rows: the schema alone
    (None, "count(*), sum(k), min(s), max(f64), mean(i16)"),
]


def csv_cell_matches(text: str, value) -> bool:
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, float):
        return text != "" and math.isclose(float(text), value, rel_tol=1e-6, abs_tol=1e-9)
    return text == str(value)


@pytest.mark.parametrize("name", ["pyarrow-dict-snappy-v1", "pyarrow-plain-zstd-v2", "duckdb-zstd"])
@pytest.mark.parametrize("where,select", ARROW_QUERIES, ids=[f"{w} | {s}" for w, s in ARROW_QUERIES])
def test_arrow_output_reads_back_as_the_csv_values(files, name, where, select):
    path = files[name]
    stream = run_eddy(path, where, select, fmt="arrow")
    table = pa.ipc.open_stream(stream).read_all()
    text = run_eddy(path, where, select, fmt="csv").decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert table.column_names == rows[0]
    assert table.num_rows == len(rows) - 1
    arrow_rows = [tuple(r.values()) for r in table.to_pylist()]
    for got, want in zip(arrow_rows, rows[1:]):
        assert all(csv_cell_matches(t, v) for t, v in zip(want, got)), f"arrow {got} != csv {want}"
    # JSON tells a null from an empty string, which CSV does not: the arrow values equal it exactly.
    json_rows = eddy_rows(path, where, select)
    assert len(arrow_rows) == len(json_rows)
    for got, want in zip(arrow_rows, json_rows):
        assert len(got) == len(want) and all(same(a, b) for a, b in zip(got, want)), f"arrow {got} != json {want}"
    # Integer widths and signs come through as Eddy's types.
    if select.startswith("id, i8"):
        assert [str(f.type) for f in table.schema][:10] == [
            "int64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "int32"]


@pytest.fixture(scope="module", params=["workers", "in-process"])
def server(request, files, tmp_path_factory):
    """A real `eddy serve` (worker processes, then --workers 0) whose data directory holds the files."""
    import socket
    import time
    import urllib.request
    data = Path(files["pyarrow-dict-snappy-v1"]).parent
    plugins = tmp_path_factory.mktemp("plugins")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--workers", "0"] if request.param == "in-process" else ["--workers", "1"]
    proc = subprocess.Popen(
        [EDDY, "serve", "--port", str(port), "--plugin-dir", str(plugins), "--data-dir", str(data), "--no-token"]
        + extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def post_eval(port, body, accept=None):
    import urllib.error
    import urllib.request
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    req = urllib.request.Request(f"http://127.0.0.1:{port}/eval", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.parametrize("name", ["pyarrow-dict-snappy-v1", "duckdb-zstd"])
@pytest.mark.parametrize("where,select", ARROW_QUERIES, ids=[f"{w} | {s}" for w, s in ARROW_QUERIES])
def test_eval_answers_arrow_when_asked_and_it_equals_the_cli_stream(server, files, name, where, select):
    path = str(files[name])
    body = {"path": path, "select": select}
    if where:
        body["where"] = where
    status, headers, stream = post_eval(server, body, accept="application/vnd.apache.arrow.stream")
    assert status == 200, stream[:300]
    assert headers.get("Content-Type") == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(stream).read_all()
    cli = pa.ipc.open_stream(run_eddy(path, where, select, fmt="arrow")).read_all()
    assert table.schema.equals(cli.schema), f"{table.schema} != {cli.schema}"
    assert table.equals(cli), "the served stream differs from eddy eval --format arrow"
    if "count(" not in select:
        assert int(headers.get("Eddy-Rows-Selected")) == table.num_rows
    assert len(headers.get("Eddy-Fingerprint", "")) > 0 and int(headers.get("Eddy-Rows-Read")) >= 0
    # polars and DuckDB read the same bytes.
    import polars as pl
    frame = pl.read_ipc_stream(stream)
    assert frame.columns == table.column_names and frame.height == table.num_rows
    arrow_table = table  # noqa: F841 (DuckDB finds it by name)
    assert duckdb.sql("select count(*) from arrow_table").fetchall()[0][0] == table.num_rows
    # "format": "arrow" in the body asks for the same; JSON stays the default, and wins a tie.
    _, _, again = post_eval(server, dict(body, format="arrow"))
    assert pa.ipc.open_stream(again).read_all().equals(table)
    status, headers, text = post_eval(server, body, accept="application/json, application/vnd.apache.arrow.stream")
    assert status == 200 and headers.get("Content-Type") == "application/json" and "result" in json.loads(text)
    status, headers, text = post_eval(server, body, accept="application/json;q=0.5, application/vnd.apache.arrow.stream")
    assert status == 200 and headers.get("Content-Type") == "application/vnd.apache.arrow.stream"


def test_an_arrow_request_that_fails_answers_json(server, files):
    path = str(files["pyarrow-dict-snappy-v1"])
    status, headers, text = post_eval(server, {"path": path, "select": "nope"},
                                      accept="application/vnd.apache.arrow.stream")
    assert status == 400 and headers.get("Content-Type") == "application/json"
    assert "nope" in json.loads(text)["error"]


def test_a_dictionary_of_one_value_and_an_empty_file_read_as_duckdb_reads_them(tmp_path):
    """Bit width 0 (every code 0: polars writes a one-value dictionary so) and a table of no rows
    (pyarrow writes a row group of none, its chunks at offset 0) were refused; both are valid."""
    import polars as pl
    files = {}
    files["const"] = tmp_path / "const.parquet"
    pl.DataFrame({"country": ["FR"] * 3, "n": [7, None, 7]}).write_parquet(files["const"])
    files["const-nulls"] = tmp_path / "const-nulls.parquet"
    pl.DataFrame({"x": pl.Series([7, None, 7] * 1000, dtype=pl.Int64)}).write_parquet(files["const-nulls"])
    files["empty"] = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"a": pa.array([], pa.int64()), "s": pa.array([], pa.string())}), files["empty"])
    for name, path in files.items():
        cols = [r[0] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
        select = ", ".join(cols)
        ours = eddy_rows(path, None, select)
        theirs = duckdb_rows(path, None, select)
        assert normalize(ours, False) == normalize(theirs, False), f"{name}: eddy {ours[:5]} != duckdb {theirs[:5]}"
        counts = eddy_rows(path, None, "count(*), " + ", ".join(f"count({c})" for c in cols))
        assert counts == [tuple(duckdb.sql(
            f"SELECT count(*), {', '.join(f'count({c})' for c in cols)} FROM read_parquet('{path}')").fetchall()[0])], name
    # Converted with its row groups whole, the nulls of a dictionary column stay counted.
    out = tmp_path / "const-nulls.eddy"
    p = subprocess.run([EDDY, "convert", str(files["const-nulls"]), str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert eddy_rows(out, "x is null", "count(*)") == [(1000,)]


def page_table(n: int, seed: int):
    """A sorted timestamp with nulls in runs, a sorted string, an unsorted int with nulls, a double."""
    rng = random.Random(seed)
    t = [None if (i // 97) % 9 == 4 else 1_700_000_000_000 + 1000 * i for i in range(n)]
    return pa.table({
        "t": pa.array(t, pa.int64()),
        "name": pa.array([f"n{i:06d}" for i in range(n)], pa.string()),
        "v": pa.array([None if rng.random() < 0.2 else rng.randint(-1000, 1000) for _ in range(n)], pa.int32()),
        "x": pa.array([rng.random() for _ in range(n)], pa.float64()),
    })


PAGE_QUERIES = [
    ("t >= 1700000400000 and t < 1700000460000", "t, name, v, x"),
    ("t < 1700000010000 or t > 1700004980000", "t, v"),
    ("t is null and v > 0", "count(*), sum(v), min(name)"),
    ("name >= 'n001000' and name < 'n001050'", "name, t, v"),
    ("name = 'n003333'", "name, x"),
    ("v = 7 and t > 1700002000000", "t, v"),
    ("t > 1700001000000 and t < 1700001300000 and v is null", "count(*), min(t), max(t)"),
    ("t >= 1700009000000", "count(*)"),
]


@pytest.fixture(scope="module")
def page_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pageindex")
    table = page_table(5000, 11)
    out = {}
    for name, kw in [
        ("dict-v1", dict(compression="snappy", data_page_size=300, write_batch_size=50, row_group_size=2000)),
        ("plain-v2", dict(compression="zstd", use_dictionary=False, data_page_version="2.0", data_page_size=700,
                          write_batch_size=40, row_group_size=1700)),
        ("one-group", dict(compression="none", use_dictionary=False, data_page_size=400, write_batch_size=25)),
        # No page index: the bounds come from the statistics pyarrow writes in each data page header.
        ("no-index-v1", dict(compression="snappy", data_page_size=300, write_batch_size=50, row_group_size=2000,
                             write_page_index=False)),
    ]:
        p = d / f"{name}.parquet"
        pq.write_table(table, p, **{"write_page_index": True, **kw})
        out[name] = p
    return out


def explain(path, where, select):
    args = [EDDY, "eval", str(path), "--where", where, "--select", select, "--explain"]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stderr


@pytest.mark.parametrize("name", ["dict-v1", "plain-v2", "one-group", "no-index-v1"])
@pytest.mark.parametrize("where,select", PAGE_QUERIES, ids=[f"{w} | {s}" for w, s in PAGE_QUERIES])
def test_page_statistics_keep_the_answer(page_files, name, where, select):
    path = page_files[name]
    ours = eddy_rows(path, where, select)
    theirs = duckdb_rows(path, where, select)
    keyed = not select.startswith("count")
    assert normalize(ours, keyed) == normalize(theirs, keyed) or all(
        len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        for a, b in zip(normalize(ours, keyed), normalize(theirs, keyed))), f"eddy {ours[:3]} != duckdb {theirs[:3]}"
    assert len(ours) == len(theirs)
    assert eddy_rows(path, where, select, extra=["--no-zone-maps"]) == ours


@pytest.mark.parametrize("name", ["dict-v1", "plain-v2", "one-group", "no-index-v1"])
def test_explain_reports_pages_skipped_on_a_sorted_column(page_files, name):
    import re
    text = explain(page_files[name], "t >= 1700000400000 and t < 1700000460000", "t, name, v")
    m = re.search(r"== pages: (\d+) read, (\d+) skipped by their statistics \((\d+) rows", text)
    assert m, text
    read, skipped, rows = map(int, m.groups())
    # 60 rows of 5000 can match: nearly every page of the three columns read is skipped.
    assert skipped > 3 * read and rows > 1000, text
    unsorted = explain(page_files[name], "x > 0.999", "x, t")
    assert "== pages: none skipped" in unsorted, unsorted
