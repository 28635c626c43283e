"""The row hash (``_row_hash``), and its first 64 bits as a number for sorting.

``_row_hash`` is md5 hex over ``name=value`` of the dataset's listed columns that are not
NULL, joined by chr(31), with DuckDB's text for each value. Existing data dirs and dbt's
staging de-duplication depend on that value, so it is always computed by the one SQL
expression of :func:`hash_expr`, whether DuckDB reads the rows from Parquet or, while a
write is staged, from an Arrow table in memory (the same DuckDB types, the same text).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from .schemas import DatasetSpec


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def hash_expr(spec: DatasetSpec, present: set[str]) -> str:
    """md5 over ``name=value`` of the listed columns that are not NULL. A column a file lacks
    is NULL, so it is left out: the same row hashes alike whichever columns came with it."""
    listed = sorted(c for c in spec.columns if c in present)
    parts = ", ".join(f"{sql_str(c + '=')} || CAST({sql_ident(c)} AS VARCHAR)" for c in listed)
    return f"md5(concat_ws(chr(31), {parts}))" if listed else "md5('')"


def row_hashes(cursor: duckdb.DuckDBPyConnection, spec: DatasetSpec, table: pa.Table) -> pa.Array:
    """``_row_hash`` of every row of ``table`` (DuckDB reads the Arrow table in place)."""
    expr = hash_expr(spec, set(table.column_names))
    result = cursor.from_arrow(table).project(f"{expr} AS h").to_arrow_table()
    column = result.column(0).combine_chunks()
    return column if column.type == pa.string() else column.cast(pa.string())


_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i


def first_64_bits(hashes: pa.Array) -> np.ndarray:
    """The first 16 hex digits of each md5 hex string as a uint64."""
    n = len(hashes)
    if hashes.null_count:
        raise ValueError("row hash is NULL")
    offsets = np.frombuffer(hashes.buffers()[1], dtype=np.int32, count=n + 1, offset=hashes.offset * 4)
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != 32 * n:
        raise ValueError("row hash is not 32 hex digits")
    digits = np.frombuffer(hashes.buffers()[2], dtype=np.uint8, count=end - start, offset=start)
    digits = _HEX[digits.reshape(n, 32)[:, :16]]
    if (digits == 255).any():
        raise ValueError("row hash is not lower-case hex")
    return np.ascontiguousarray((digits[:, 0::2] << 4) | digits[:, 1::2]).view(np.uint64).ravel()
