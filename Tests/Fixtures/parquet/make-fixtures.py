"""Writes the small Parquet fixtures of the Swift tests (ParquetTests, ParquetFuzzTests) with pyarrow.

Each holds the same 200 rows: id = 0…199 (int64, required), k = id % 7 (int32, null when id % 5 == 0),
s = ["alpha", "beta", "gamma"][id % 3] (string, null when id % 11 == 0), f = id / 4 (double),
b = id % 2 == 0 (bool), u = id % 250 (uint8). Run: python make-fixtures.py (pyarrow 22).
"""
import pyarrow as pa
import pyarrow.parquet as pq

n = 200
schema = pa.schema([pa.field("id", pa.int64(), nullable=False), ("k", pa.int32()), ("s", pa.string()),
                    ("f", pa.float64()), ("b", pa.bool_()), ("u", pa.uint8())])
table = pa.table({
    "id": list(range(n)),
    "k": [None if i % 5 == 0 else i % 7 for i in range(n)],
    "s": [None if i % 11 == 0 else ["alpha", "beta", "gamma"][i % 3] for i in range(n)],
    "f": [i / 4 for i in range(n)],
    "b": [i % 2 == 0 for i in range(n)],
    "u": [i % 250 for i in range(n)],
}, schema=schema)
pq.write_table(table, "dict-snappy-v1.parquet", compression="snappy", row_group_size=64)
pq.write_table(table, "plain-zstd-v2.parquet", compression="zstd", use_dictionary=False, data_page_version="2.0")
pq.write_table(table, "delta-gzip.parquet", compression="gzip", use_dictionary=False, data_page_size=300,
               column_encoding={"id": "DELTA_BINARY_PACKED", "k": "DELTA_BINARY_PACKED",
                                "s": "DELTA_BYTE_ARRAY", "f": "BYTE_STREAM_SPLIT"})
# A page index (offset and column indexes) over pages of 16 rows, in row groups of 128: page statistics
# skip pages of the sorted id inside a row group.
pq.write_table(table, "pageindex-dict-v1.parquet", compression="snappy", row_group_size=128, write_page_index=True,
               data_page_size=64, write_batch_size=16)
# No page index, but statistics in the data page headers (pyarrow's default) over pages of 16 rows, data
# page v2, plain: page statistics come from the headers.
pq.write_table(table, "headerstats-plain-v2.parquet", compression="zstd", use_dictionary=False, data_page_version="2.0",
               row_group_size=128, data_page_size=64, write_batch_size=16)
