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
    return _hex_words(hashes, 1)[:, 0]


def hash_bits(hashes: pa.Array) -> np.ndarray:
    """The 128 bits of each md5 hex string as two uint64 (its first and last 16 hex digits)."""
    return _hex_words(hashes, 2)


def _hex_words(hashes: pa.Array, words: int) -> np.ndarray:
    n = len(hashes)
    if hashes.null_count:
        raise ValueError("row hash is NULL")
    offsets = np.frombuffer(hashes.buffers()[1], dtype=np.int32, count=n + 1, offset=hashes.offset * 4)
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != 32 * n:
        raise ValueError("row hash is not 32 hex digits")
    digits = np.frombuffer(hashes.buffers()[2], dtype=np.uint8, count=end - start, offset=start)
    digits = _HEX[digits.reshape(n, 32)[:, : 16 * words]]
    if (digits == 255).any():
        raise ValueError("row hash is not lower-case hex")
    return np.ascontiguousarray((digits[:, 0::2] << 4) | digits[:, 1::2]).view(np.uint64).reshape(n, words)


class SeenHashes:
    """Row hashes already in a month, to tell which incoming rows are new: the 128 bits of each
    hash as two numbers (16 bytes a row, not an md5 hex string's 36), sorted once, an incoming
    month's hashes looked up by binary search on the first 64 bits and confirmed on the last 64.

    Why not ``pc.is_in(batch, value_set=seen)``: Arrow builds a hash table of the value set on
    every call, so probing a month batch by batch cost O(rows x batches): 15.8 s of a 2M-row
    import (bench/bench_import.py)."""

    def __init__(self, hashes: pa.Array | pa.ChunkedArray | None = None):
        self._first = np.empty(0, np.uint64)  # sorted
        self._last = np.empty(0, np.uint64)  # aligned with _first
        if hashes is not None:
            self.add([hashes])

    def __len__(self) -> int:
        return len(self._first)

    def add(self, parts: list[pa.Array | pa.ChunkedArray]) -> None:
        """Add hashes (sorting once per call: add a write's hashes together)."""
        arrays = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p]) if len(c)]
        if not arrays:
            return
        bits = np.concatenate([np.stack([self._first, self._last], axis=1), *(hash_bits(a) for a in arrays)])
        order = np.argsort(bits[:, 0])  # by the first 64 bits only: absent() compares a run of equal ones whole
        self._first, self._last = bits[order, 0], bits[order, 1]

    def absent_bits(self, bits: np.ndarray) -> np.ndarray:
        """True where a hash, given as its :func:`hash_bits`, is not in the set."""
        if not len(self._first):
            return np.ones(len(bits), dtype=bool)
        n = len(self._first)
        at = np.minimum(np.searchsorted(self._first, bits[:, 0]), n - 1)  # the first stored >= each
        same_first = self._first[at] == bits[:, 0]
        found = same_first & (self._last[at] == bits[:, 1])
        # stored hashes sharing their first 64 bits (a run): compare the whole run
        for i in np.flatnonzero(same_first & ~found & (at + 1 < n)):
            end = np.searchsorted(self._first, bits[i, 0], side="right")
            found[i] = bool((self._last[at[i]:end] == bits[i, 1]).any())
        return ~found
