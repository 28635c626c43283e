"""The row hash (``_row_hash``): which rows are the same row, for de-duplication.

Version 2 (:data:`ROW_HASH_VERSION`), over the typed values, with no text built:

- each listed column's non-NULL cell hashes to two 64-bit lanes:
  - text: ``md5(name + "\\x1f" + value as UTF-8)``, its 16 bytes read as two little-endian
    uint64. A batch hashes each distinct value once (Arrow's dictionary encoding), and a
    write remembers the values it hashed;
  - a number, date, timestamp or boolean: ``splitmix64(bits ^ key)`` per lane, ``bits`` the
    value's 64-bit pattern (integer; IEEE double with -0.0 as 0.0 and one NaN; days since
    1970-01-01; microseconds since 1970-01-01 UTC; 0 or 1) and the two keys the little-endian
    uint64 of ``md5(name + "\\x1f" + type tag)``;
- a row's lanes are the sums (mod 2^64) of its cells' lanes: a NULL cell, or a column the
  input lacks, adds nothing, so the same row hashes alike whichever columns came with it,
  and neither column order nor batch boundaries matter;
- ``_row_hash`` is the 16 bytes of the two lanes (little-endian) as 32 hex digits.

Why not version 1 (md5 over the ``name=value`` text of the row, computed by DuckDB): building
that text and its md5 took 2.8 s of CPU for a 2M-row import, this 0.6 s
(``bench/bench_import.py``). A data dir written before is upgraded on first use
(``DataDir.upgrade_row_hashes``): every stored hash recomputed, one commit per table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schemas import DatasetSpec

ROW_HASH_VERSION = 2
_CACHE_LIMIT = 1_000_000  # distinct text values remembered per column (about 100 MB at most)


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea, Flood 2014): a bijection on 64 bits that mixes
    every input bit into every output bit."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _digest(name: str, value: bytes) -> bytes:
    return hashlib.md5(name.encode() + b"\x1f" + value).digest()


class RowHasher:
    """Hashes the rows of one dataset's tables; remembers the text values it has hashed (the
    same users, products and days come back batch after batch). One thread at a time."""

    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self._text: dict[str, dict[str, bytes]] = {}

    def bits(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        """The two lanes of each row's hash, shape (rows, 2), uint64."""
        # each lane summed apart, as 1-D arrays: gathering and adding (rows, 2) arrays took
        # 0.25 s of a 2M-row import's hash, 1-D takes 0.04
        first, last = np.zeros(table.num_rows, np.uint64), np.zeros(table.num_rows, np.uint64)
        for name in table.column_names:
            if name not in self.spec.columns:
                continue
            column = table.column(name)
            if isinstance(column, pa.ChunkedArray):
                # one array: text is hashed once per distinct value of each array
                column = column.combine_chunks()
            if len(column) and column.null_count < len(column):
                cells = self._cells(name, column)
                first += cells[0]
                last += cells[1]
        return np.stack([first, last], axis=1)

    def hex(self, table: pa.Table | pa.RecordBatch) -> pa.Array:
        """``_row_hash`` of each row."""
        return to_hex(self.bits(table))

    def _cells(self, name: str, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """Each cell's two lanes (0 for NULL), as two arrays."""
        kind = values.type
        if pa.types.is_dictionary(kind):
            if pa.types.is_string(kind.value_type):  # a CSV's text: hashed by its own dictionary
                return self._text_cells(name, values)
            values, kind = values.cast(kind.value_type), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return self._text_cells(name, values)
        if pa.types.is_floating(kind):
            v = values.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False) + 0.0  # -0.0 -> 0.0
            bits, tag = np.where(np.isnan(v), np.nan, v).view(np.uint64), "float"
        elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            bits = values.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
            tag = "bool" if pa.types.is_boolean(kind) else "int"
        elif pa.types.is_date(kind):
            days = values.cast(pa.date32()).cast(pa.int32()).cast(pa.int64())
            bits, tag = days.fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64), "date"
        elif pa.types.is_timestamp(kind):
            micros = values.cast(pa.timestamp("us", kind.tz)).cast(pa.int64())
            bits, tag = micros.fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64), "timestamp"
        else:  # no listed column has another type; hashed by its Arrow text, tagged with the type
            return self._text_cells(name + "\x1f" + str(kind), values.cast(pa.string()))
        keys = np.frombuffer(_digest(name, tag.encode()), np.uint64)
        cells = _splitmix64(bits ^ keys[0]), _splitmix64(bits ^ keys[1])
        if values.null_count:
            null = ~values.is_valid().to_numpy(zero_copy_only=False)
            for lane in cells:
                lane[null] = 0
        return cells

    def _text_cells(self, name: str, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        encoded = values if isinstance(values, pa.DictionaryArray) else pc.dictionary_encode(values)
        known = self._text.setdefault(name, {})
        if len(known) > _CACHE_LIMIT:
            known.clear()
        digests = []
        for value in encoded.dictionary.to_pylist():
            digest = known.get(value)
            if digest is None:
                digest = known[value] = _digest(name, value.encode())
            digests.append(digest)
        # one more entry, all zero, for NULL cells
        lanes = np.frombuffer(b"".join(digests) + bytes(16), np.uint64).reshape(-1, 2).T.copy()  # a row a lane
        indices = encoded.indices.fill_null(len(digests)).to_numpy(zero_copy_only=False)
        return lanes[0].take(indices), lanes[1].take(indices)


def row_hashes(spec: DatasetSpec, table: pa.Table | pa.RecordBatch) -> pa.Array:
    """``_row_hash`` of every row of ``table`` (a one-off :class:`RowHasher`)."""
    return RowHasher(spec).hex(table)


def to_hex(bits: np.ndarray) -> pa.Array:
    """Two lanes a row -> 32 hex digits a row (the 16 bytes in little-endian order), so that
    :func:`hash_bits` gives the lanes back. ``bytes.hex`` of the whole buffer: 6x faster than
    a numpy lookup table."""
    n = len(bits)
    digits = np.ascontiguousarray(bits, dtype="<u8").tobytes().hex().encode("ascii")
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits))


_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i


def hash_bits(hashes: pa.Array) -> np.ndarray:
    """``_row_hash`` texts -> their two lanes, shape (rows, 2): the inverse of :func:`to_hex`."""
    n = len(hashes)
    if hashes.null_count:
        raise ValueError("row hash is NULL")
    offsets = np.frombuffer(hashes.buffers()[1], dtype=np.int32, count=n + 1, offset=hashes.offset * 4)
    start, end = int(offsets[0]), int(offsets[-1])
    if end - start != 32 * n:
        raise ValueError("row hash is not 32 hex digits")
    digits = np.frombuffer(hashes.buffers()[2], dtype=np.uint8, count=end - start, offset=start)
    digits = _HEX[digits.reshape(n, 32)]
    if (digits == 255).any():
        raise ValueError("row hash is not lower-case hex")
    return np.ascontiguousarray((digits[:, 0::2] << 4) | digits[:, 1::2]).view("<u8").reshape(n, 2)


class SeenHashes:
    """Row hashes already in a month, to tell which incoming rows are new: the two lanes of
    each hash (16 bytes a row, not the 36 of its text), sorted once, an incoming
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

    def add(self, parts: Iterable[pa.Array | pa.ChunkedArray]) -> None:
        """Add ``_row_hash`` texts, sorting once per call. ``parts`` may be a stream (a month's
        row groups): each is turned into its lanes (16 bytes a row) before the next is read,
        so the texts (36) are never all in memory."""
        self.add_bits(hash_bits(c) for p in parts
                      for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p]) if len(c))

    def add_bits(self, parts: Iterable[np.ndarray]) -> None:
        """Add hashes given as their two lanes (:func:`hash_bits`), a stream of arrays taken
        apart one at a time: loading a month of 1M stored hashes peaked 32 MB, not 48."""
        # each lane gathered into one array, sorted by the first lane: absent_bits() compares a
        # run of equal first lanes whole. No (rows, 2) copy: a re-import holds many months.
        firsts, lasts = [self._first], [self._last]
        for p in parts:
            if len(p):
                firsts.append(p[:, 0].copy())
                lasts.append(p[:, 1].copy())
        if len(firsts) == 1:
            return
        first = np.concatenate(firsts)
        del firsts
        order = np.argsort(first)
        self._first = first[order]
        del first
        last = np.concatenate(lasts)
        del lasts
        self._last = last[order]

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
