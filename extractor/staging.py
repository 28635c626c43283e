"""One write of a transaction, staged locally until the commit adds it to the Delta table.

A staged row has the input's columns (listed ones typed, extras as text) plus ``_source`` and
``_extracted_at``; its row hash (``rowhash.py``) is kept apart as two 64-bit lanes and written
as ``_row_hash`` text with the row. A worker thread hashes a table and splits it by month
while the caller reads the next one (the CSV reader and Arrow's kernels release the GIL).

Rows the table already holds are dropped on the way when the transaction allows it (an
append, see ``Transaction.write``): a month's stored hashes are loaded when the write first
meets the month, so a re-import stages, and the commit reads back, nothing. The commit checks
that no other writer removed those stored rows meanwhile.

Duplicates within the write are dropped too: every row of a write has the same ``_source``
and ``_extracted_at``, so of equal rows one is kept. Equal rows have the same usage date, so
they are in the same month.

An append writes each month's Parquet data file while it stages (:class:`_MonthFiles`): a
row whose hash is surely the first of its kind in the write (:class:`_SeenSlots`) goes
straight to the file; the others (real repeats, and a few rows whose slot another row took)
are spooled and compared by their full hash when the input ends, and those that repeat
nothing are added to the file then. The commit only adds the finished file to the table. A
replace, and a month whose stored hashes were too many to hold while staging, spool their
rows instead (Arrow IPC in local scratch); the commit then sorts the first lane of the month's
row hashes (8 bytes a row), compares the rows whose lanes repeat by both lanes, and writes
only the first of equal rows. Memory follows the rows of the largest month, never the whole
input.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError
from .rowhash import RowHasher, SeenHashes, to_hex
from .schemas import META_COLUMNS, TEXT, DatasetSpec

STAGING_ROW_GROUP = 64_000  # rows of a month gathered before they go to its spool
# Rows buffered across months: past it the fullest month is spooled. A 2M-row import's rows
# come from 12 months: at 40,000 the spool batches held ~5,000 rows, and the commit's calls per
# batch cost 0.2-0.3 s; dictionary-encoded text keeps 200,000 rows to ~25 MB more peak RSS.
STAGING_BUFFER_ROWS = 200_000
# A month's flush of at least this many rows goes to its Parquet file while staging, a row group
# each; smaller ones (many months interleaved) are spooled and written in row groups of
# ROW_GROUP_ROWS when the input ends. Writing 2M rows in row groups of 8k took 0.72-1.05 s of
# CPU, of 17k 0.61-0.79, of 64k 0.56-0.68. A 2M-row import of 12 interleaved months flushes
# ~17-33k rows at a time.
DIRECT_ROWS = 16_000
# Rows per row group of a data file written from spooled rows: the staged tables are small (a
# few thousand rows of a month each); written one row group each, a 2M-row import spent 2.8 s in
# 1,500 small writes and made files slow to scan. 64k, not 128k: two months are written at
# once, and with 128k a 6M-row import peaked 389 MB instead of 315 (same speed).
ROW_GROUP_ROWS = 64_000
# Slots of the filter that tells a row whose hash is surely the first of its kind in the write
# (a bit each: 16 MB). The rows whose slot is taken are compared by their full hash when the
# input ends: on average rows / 2^28 of them (2M distinct rows: ~0.75%, 12M: ~4.5%; the bench's
# 2M-row import spooled 14,507 rows, the file's 2,704 repeated rows among them).
SEEN_SLOTS_LOG2 = 27


# Stored hashes a write may hold at once to drop rows already stored (16 bytes a row): past
# it, a month's rows are spooled and the commit compares them month by month instead. With
# 4M, re-importing a 12M-row file peaked 408 MB; with 3M, 381 (bench_import.py --rows). In a
# freshly installed venv the shared libraries' pages add ~65 MB of RSS: 3M made 407 MB, 2M 387.
KNOWN_ROWS_LIMIT = 2_000_000


@dataclass
class Known:
    """A table's stored row hashes at one version, month by month, for a write that drops
    rows the table already holds (see ``Transaction.write``)."""

    version: int
    load: Callable[[str], SeenHashes]  # the month's stored hashes
    rows: dict[str, int]  # stored rows per month
    files: dict[str, frozenset[str]]  # the month's data files at ``version``


@dataclass
class Staged:
    """A write's rows, typed, hashed and de-duplicated, spooled by month until the commit."""

    months: dict[str, _StagedMonth]  # month ("YYYY-MM", or "" when not partitioned) -> its spool
    rows: int  # rows received
    columns: set[str]  # every column the write brought (listed, extra, meta)
    known: Known | None = None  # the table version whose stored rows were dropped
    checked: set[str] = field(default_factory=set)  # months compared with ``known`` while staging
    dropped: dict[str, int] = field(default_factory=dict)  # per month: rows dropped as already stored

    def tables(self, month: str) -> Iterator[pa.Table]:
        """The month's rows (each row hash once), in the write's layout."""
        yield from self.months[month].tables()

    def distinct(self, column: str) -> list:
        """The distinct values of ``column`` (as text) over the write (a snapshot's teams)."""
        values: set = set()
        for month in self.months:
            for table in self.tables(month):
                if column in table.column_names:
                    values |= set(pc.unique(table.column(column).cast(pa.string())).to_pylist())
        return sorted(values, key=lambda v: (v is None, v or ""))

    def delete(self) -> None:
        for month in self.months.values():
            month.delete()


def layout_schema(spec: DatasetSpec, extras: Iterable[str]) -> pa.Schema:
    """The columns of a partition file: listed, extra (text, by name), meta."""
    return pa.schema([*spec.schema, *(pa.field(n, pa.string()) for n in sorted(extras)),
                      *(pa.field(k, v) for k, v in META_COLUMNS.items())])


def file_schema(layout: pa.Schema) -> pa.Schema:
    """The columns of a month's Parquet file (``layout`` without the partition column): every
    text column but the row hash (distinct on every row) dictionary-encoded."""
    return pa.schema([f.with_type(TEXT) if pa.types.is_string(f.type) and f.name != "_row_hash" else f
                      for f in layout])


def in_file_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of :func:`file_schema` in order, NULL where it has none;
    plain text (an API's rows) dictionary-encoded here, as the Parquet writer would have done."""
    names = set(table.column_names)
    columns = []
    for f in schema:
        if f.name not in names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = table.column(f.name)
        if column.type != f.type:
            column = pc.dictionary_encode(column) if f.type == TEXT else column.cast(f.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


class MonthFile:
    """One Parquet data file of a month's rows, written a row group per table, with the row
    count and date bounds its Delta add action records."""

    def __init__(self, path: Path, schema: pa.Schema, date_column: str | None):
        self.path = path
        self.schema = schema  # see file_schema
        self.date_column = date_column
        self.rows = 0
        self.low = self.high = None  # the date column's bounds
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        """``table`` as one row group."""
        self._write_group(in_file_schema(table, self.schema))

    def write_all(self, tables: Iterable[pa.Table]) -> None:
        """``tables`` in row groups of :data:`ROW_GROUP_ROWS`, each conformed before they are
        gathered: text read back from a file is plain, a spool's is dictionary-encoded, and
        writes differ in columns."""
        for table in rechunked((in_file_schema(t, self.schema) for t in tables), ROW_GROUP_ROWS):
            self._write_group(table)

    def _write_group(self, table: pa.Table) -> None:
        # one dictionary per column and row group: Parquet stores an Arrow dictionary as it is
        # (a row group of 2M rows' text: 0.33 s, not the 0.52 of plain strings), but a
        # dictionary that changes within a row group is encoded again value by value
        table = table.combine_chunks()
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # min/max statistics only where a reader filters: with them on every text column,
            # writing 2M rows took 0.81 s instead of 0.58 s
            stats_columns = [c for c in (self.date_column, "_extracted_at") if c]
            # no dictionary for the row hash, distinct on every row: trying one cost 10%; nor
            # snappy: hex digits shrink by 10% only, for 0.2 s of CPU per 2M rows
            names = self.schema.names
            # no Arrow schema stored: the text columns read back as plain strings
            self._writer = pq.ParquetWriter(
                self.path, self.schema, compression={c: "none" if c == "_row_hash" else "snappy" for c in names},
                write_statistics=stats_columns, use_dictionary=[c for c in names if c != "_row_hash"],
                store_schema=False)
        self._writer.write_table(table)
        self.rows += table.num_rows
        if self.date_column and table.num_rows:
            bounds = pc.min_max(table.column(self.date_column))
            self.low = min(filter(None, [self.low, bounds["min"].as_py()]), default=None)
            self.high = max(filter(None, [self.high, bounds["max"].as_py()]), default=None)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def tables(self) -> Iterator[pa.Table]:
        """The file's rows read back (text plain), a row group at a time."""
        if self.rows:
            source = pq.ParquetFile(self.path)
            for group in range(source.num_row_groups):
                yield source.read_row_group(group)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def stage(
    tables: Iterable[pa.Table],
    spec: DatasetSpec,
    *,
    source: str,
    extracted_at: datetime,
    new_path: Callable[[], Path],
    known: Known | None = None,
    append: bool = False,
    after_batch: Callable[[], None] = lambda: None,
) -> Staged:
    """Stage ``tables`` (conformed to the dataset's types) for ``spec``; with ``known``, rows
    the table holds at ``known.version`` are dropped. With ``append`` (the write replaces
    nothing), each month's Parquet file is written here. A worker thread hashes and stages each
    table while the caller reads the next one: reading, and hashing with writing, each take
    about half of the CPU time of an import (bench/bench_import.py)."""
    use_lean_memory_pool()
    months = _MonthFiles(spec, new_path, source, extracted_at, known, append)
    hasher = RowHasher(spec)
    rows = 0

    def staged(table: pa.Table) -> None:
        if "_row_hash" in table.column_names:  # never trusted from the input
            table = table.drop_columns(["_row_hash"])
        months.add(table, hasher.bits(table))

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="aps-usage-staging") as pool:
            ahead: Future | None = None  # at most one table staged while the next is read
            try:
                for table in tables:
                    months.check(table, source)
                    rows += table.num_rows
                    if ahead is not None:
                        ahead.result()
                    ahead = pool.submit(staged, table)
                    after_batch()
                if ahead is not None:
                    ahead.result()
                    ahead = None
            finally:
                if ahead is not None:
                    ahead.cancel()
                    try:  # a running one is not cancelled: let it finish before the spools close
                        ahead.result()
                    except BaseException:  # noqa: BLE001 - the first error is the one raised
                        pass
        months.forget_known()
        release_memory()  # the reading buffers, before the months are de-duplicated
        months.close()
    except BaseException:
        months.close(flush=False)
        raise
    return Staged(months.staged, rows, months.columns | {"_row_hash"}, known, months.checked, months.dropped)


def use_lean_memory_pool() -> None:
    """Allocate Arrow buffers from jemalloc (see extractor/__init__.py) when pyarrow was
    imported before this package chose it. An explicit ARROW_DEFAULT_MEMORY_POOL is left alone.
    And one glibc malloc arena (numpy's arrays) for every thread, see _one_malloc_arena."""
    if not sys.platform.startswith("linux"):
        return
    _one_malloc_arena()
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "jemalloc") != "jemalloc":
        return
    if pa.default_memory_pool().backend_name == "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):  # a pyarrow built without jemalloc
        pass


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def _one_malloc_arena() -> None:
    """Have glibc's malloc serve every thread from one arena (unless MALLOC_ARENA_MAX says
    otherwise). Each thread that allocates (the staging worker, the month-file threads) gets
    an arena of its own by default, and memory freed in one is not reused by another: a
    12M-row re-import peaked 410-418 MB with them, 364-381 MB with one (a freshly installed venv).
    Set before those threads first allocate; a no-op where malloc is not glibc's."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


def rechunked(parts: Iterable[pa.Table | pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """The same rows as tables of ``rows`` rows (the last one shorter): for the writer, which
    hashes and splits each table it is handed, and for a month's row groups."""
    pending: list[pa.Table] = []
    count = 0
    for part in parts:
        table = part if isinstance(part, pa.Table) else pa.Table.from_batches([part])
        while table.num_rows:
            take = min(rows - count, table.num_rows)
            pending.append(table.slice(0, take))
            table = table.slice(take)
            count += take
            if count == rows:
                yield pa.concat_tables(pending)
                pending, count = [], 0
    if pending:
        yield pa.concat_tables(pending)


def release_memory() -> None:
    """Return freed buffers to the OS (Arrow's pool, then glibc's heap)."""
    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def first_lane(bits: np.ndarray) -> np.ndarray:
    """The sort key of a row hash when looking for repeats (a test makes every key collide)."""
    return bits[:, 0]


def _bits_table(bits: np.ndarray) -> pa.Table:
    return pa.table({"h0": bits[:, 0], "h1": bits[:, 1]})


def _bits_of(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    return np.stack([batch.column(0).to_numpy(), batch.column(1).to_numpy()], axis=1)


def _all_bits(batches: Iterable[pa.RecordBatch]) -> np.ndarray:
    """The lanes of every row of a hash spool's ``batches``, shape (rows, 2)."""
    return np.concatenate([_bits_of(b) for b in batches] or [np.empty((0, 2), np.uint64)])


def _with_row_hash(table: pa.Table, bits: np.ndarray) -> pa.Table:
    """``table`` with its rows' ``_row_hash`` text (from their lanes) as its last column."""
    return table.append_column(pa.field("_row_hash", pa.string()), to_hex(bits))


class _SeenSlots:
    """Which rows of a write are surely the first of their row hash: one bit per slot of the
    first lane's top bits. A row whose slot is free is the first of its hash (it takes the
    slot); a row whose slot is taken may repeat an earlier row and is compared by its full
    hash when the input ends. Nothing is stored per row."""

    def __init__(self, log2: int | None = None):
        log2 = SEEN_SLOTS_LOG2 if log2 is None else log2
        self._shift = np.uint64(64 - log2)
        self._words = np.zeros(max(1, (1 << log2) // 64), np.uint64)

    def take(self, bits: np.ndarray) -> np.ndarray:
        """Over ``bits`` (rows in order): True for a row whose slot was free, the first of its
        slot among these rows; those slots are taken."""
        slot = first_lane(bits) >> self._shift
        word, bit = (slot >> np.uint64(6)).astype(np.intp), np.left_shift(np.uint64(1), slot & np.uint64(63))
        first = (self._words[word] & bit) == 0
        # a slot met twice among these rows: only its first row takes it. Sorted values, then
        # the few repeated slots alone: np.unique(return_index=True) over every row cost 0.14
        # s of a 2M-row import, this 0.05
        ordered = np.sort(slot)
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if len(repeated):
            rows = np.flatnonzero(np.isin(slot, repeated))
            later = np.ones(len(rows), dtype=bool)
            later[np.unique(slot[rows], return_index=True)[1]] = False
            first[rows[later]] = False
        words, bits = word[first], bit[first]
        self._words[words] |= bits  # of free slots sharing a word, only one write lands...
        lost = (self._words[words] & bits) == 0
        if lost.any():  # ...the others are set again one by one (ufunc.at is 3x slower on all)
            np.bitwise_or.at(self._words, words[lost], bits[lost])
        return first


class _MonthFiles:
    """A write's rows split by month while the input is read, each month's gathered in slices
    of up to :data:`STAGING_ROW_GROUP` rows (the rows of many months come interleaved, a few
    thousand at a time).

    An append writes a month's slices to the month's Parquet file (local scratch), a row group
    each, as they come: the rows :class:`_SeenSlots` tells are the first of their hash. The
    others, and slices under :data:`DIRECT_ROWS` rows, are appended to an Arrow IPC stream
    (local scratch), which keeps nothing in memory; when the input ends, those that repeat
    neither a row of the file nor an earlier one are added to the file (:meth:`_finish_month`).

    Otherwise (a replace, or a month compared with the stored rows only by the commit), all of
    a month's rows are spooled and the commit de-duplicates them.

    A month's row hashes are spooled apart (two uint64 a row), so that its duplicates can be
    found (see :func:`_first_of_equal_rows`) before its rows are read back."""

    def __init__(self, spec: DatasetSpec, new_path: Callable[[], Path], source: str, extracted_at: datetime,
                 known: Known | None = None, append: bool = False):
        self.spec = spec
        lock = threading.Lock()  # months are finished on two threads

        def locked_new_path() -> Path:
            with lock:
                return new_path()

        self.new_path = locked_new_path
        self.source = source
        self.extracted_at = extracted_at
        self.staged: dict[str, _StagedMonth] = {}
        self.columns: set[str] = set()
        self.dropped: dict[str, int] = {}
        self.checked: set[str] = set()  # months compared with the stored hashes
        self._known = known
        self._append = append
        self._seen_slots: _SeenSlots | None = None  # made when the first file is written
        self._seen_lock = threading.Lock()
        self._files: dict[str, MonthFile] = {}  # month -> its Parquet file being written
        self._file_hashes: dict[str, _RowFile] = {}  # month -> the lanes of its file's rows
        self._stored: dict[str, SeenHashes | None] = {}  # month -> its stored hashes (None: not loaded)
        self._stored_rows = 0
        self._spools: dict[str, _RowFile] = {}
        self._hash_spools: dict[str, _RowFile] = {}
        self._pending: dict[str, list[tuple[pa.Table, np.ndarray]]] = {}

    def check(self, table: pa.Table, source: str) -> None:
        column = self.spec.date_column
        if column and table.num_rows:
            if column not in table.column_names:
                raise InputError(f"{source}: required column '{column}' is missing")
            nulls = table.column(column).null_count
            if nulls:
                raise InputError(f"{source}: column '{column}': {nulls} row(s) have no date")

    def add(self, table: pa.Table, bits: np.ndarray) -> None:
        self.columns |= set(table.column_names)
        if not self.spec.date_column:
            rows = self._not_stored("", np.arange(table.num_rows), bits)
            if len(rows) == table.num_rows:
                self._buffer("", table, bits)
            elif len(rows):
                self._buffer("", table.take(pa.array(rows)), bits[rows])
            return
        if not table.num_rows:
            return
        dates = table.column(self.spec.date_column)
        keys = pc.add(pc.multiply(pc.year(dates), 100), pc.month(dates))
        order = pc.sort_indices(keys).to_numpy()  # stable: rows keep their order within a month
        keys = keys.to_numpy()[order]
        starts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(keys)]
        for start, end in zip(starts, starts[1:]):
            key = int(keys[start])
            month = f"{key // 100:04d}-{key % 100:02d}"
            rows = self._not_stored(month, order[start:end], bits)
            if len(rows):
                # a take per month, not slices of one: a buffered slice would keep the whole batch alive
                self._buffer(month, table.take(pa.array(rows)), bits[rows])

    def _not_stored(self, month: str, rows: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Of ``rows``, those whose hash the table did not hold at the known version."""
        if self._known is None:
            return rows
        if month not in self._stored:
            stored_rows = self._known.rows.get(month, 0)
            self._stored[month] = None
            if stored_rows == 0:  # nothing stored: nothing to drop
                self.checked.add(month)
            elif 0 < stored_rows and self._stored_rows + stored_rows <= KNOWN_ROWS_LIMIT:
                self._stored[month] = self._known.load(month)
                self._stored_rows += stored_rows
                self.checked.add(month)
            # else a row count unknown, or more hashes than to hold: the commit compares the month
        stored = self._stored[month]
        if stored is None:
            return rows
        new = stored.absent_bits(bits[rows])
        if not new.all():
            self.dropped[month] = self.dropped.get(month, 0) + int(len(rows) - new.sum())
            rows = rows[new]
        return rows

    def forget_known(self) -> None:
        self._stored.clear()

    def _buffer(self, month: str, table: pa.Table, bits: np.ndarray) -> None:
        # A month's slices are gathered before they go to its spool: fewer, larger writes.
        queued = self._pending.get(month)
        if queued and not queued[0][0].schema.equals(table.schema):
            self._flush(month)
        self._pending.setdefault(month, []).append((table, bits))
        if sum(t.num_rows for t, _ in self._pending[month]) >= STAGING_ROW_GROUP:
            self._flush(month)
        # bound what is buffered across months: flush the fullest month first
        sizes = {m: sum(t.num_rows for t, _ in ts) for m, ts in self._pending.items()}
        if sum(sizes.values()) >= STAGING_BUFFER_ROWS:
            self._flush(max(sizes, key=sizes.get))

    def _writes_file(self, month: str) -> bool:
        """Whether the month's Parquet file is written while staging: an append whose rows
        were compared with the month's stored rows (if any) when the write met it."""
        return self._append and (self._known is None or month in self.checked)

    def _extras(self, schema: pa.Schema) -> frozenset[str]:
        return frozenset(schema.names) - self.spec.columns.keys() - META_COLUMNS.keys()

    def _new_file(self, extras: Iterable[str]) -> tuple[MonthFile, _RowFile]:
        file = MonthFile(self.new_path().with_suffix(".parquet"), file_schema(layout_schema(self.spec, extras)),
                         self.spec.date_column)
        return file, _RowFile(self.new_path)

    def _write_to_file(self, file: MonthFile, hashes: _RowFile, table: pa.Table, bits: np.ndarray) -> None:
        if not len(bits):
            return
        file.write(self._in_layout(_with_row_hash(table, bits)))
        hashes.add(_bits_table(bits))

    def _flush(self, month: str, last: bool = False) -> None:
        """Write or spool the month's buffered rows."""
        parts = self._pending.pop(month, [])
        if not parts:
            return
        # one record batch per flush: the commit handles each spooled batch with a few calls
        table = pa.concat_tables([t for t, _ in parts]).combine_chunks()
        bits = np.concatenate([b for _, b in parts]) if len(parts) > 1 else parts[0][1]
        if (last or table.num_rows >= DIRECT_ROWS) and self._writes_file(month):
            if month not in self._files:
                self._files[month], self._file_hashes[month] = self._new_file(self._extras(table.schema))
            file = self._files[month]
            if self._extras(table.schema) <= self._extras(file.schema):  # else: spooled, compared at the end
                with self._seen_lock:  # the months' last rows are flushed two at a time
                    if self._seen_slots is None:
                        self._seen_slots = _SeenSlots()
                    first = self._seen_slots.take(bits)
                self._write_to_file(file, self._file_hashes[month], table.filter(first), bits[first])
                if first.all():
                    return
                table, bits = table.filter(~first), bits[~first]
        if month not in self._spools:
            self._spools[month] = _RowFile(self.new_path)
            self._hash_spools[month] = _RowFile(self.new_path)
        self._spools[month].add(table)
        self._hash_spools[month].add(_bits_table(bits))

    def _finish_month(self, month: str) -> None:
        """The month's last rows flushed (written to its file whatever their number: the
        last row group of a file is the only small one), the file completed with the spooled
        rows that repeat no other, or the spools closed for the commit (which finds the repeats)."""
        self._flush(month, last=True)
        spool, hashes = self._spools.pop(month, None), self._hash_spools.pop(month, None)
        file, file_hashes = self._files.pop(month, None), self._file_hashes.pop(month, None)
        for part in (spool, hashes, file_hashes):
            if part is not None:
                part.close()
        if spool is not None and self._writes_file(month):
            extras = frozenset().union(*(self._extras(s) for s in spool.schemas))
            if file is None:
                file, file_hashes = self._new_file(extras)
            if extras <= self._extras(file.schema):
                self._add_spooled(file, file_hashes, spool, hashes)
                spool.delete()
                hashes.delete()
                spool = hashes = None
        if file is not None:
            file.close()
            file_hashes.close()
        self.staged[month] = _StagedMonth(spool or _RowFile(self.new_path), hashes or _RowFile(self.new_path),
                                          self._in_layout, file, file_hashes)

    def _add_spooled(self, file: MonthFile, file_hashes: _RowFile, spool: _RowFile, hashes: _RowFile) -> None:
        """Add to the month's file the spooled rows that repeat neither a row of the file nor
        an earlier spooled row, in row groups of :data:`ROW_GROUP_ROWS`."""
        keep = _not_in(file_hashes, hashes)
        repeats = _first_of_equal_rows(hashes.all_batches)
        if repeats is not None:
            keep &= repeats

        def kept() -> Iterator[pa.Table]:
            row = 0
            for batch, lanes in zip(spool.all_batches(), hashes.all_batches()):
                mask = keep[row: row + batch.num_rows]
                row += batch.num_rows
                if mask.any():
                    bits = _bits_of(lanes)[mask]
                    file_hashes.add(_bits_table(bits))
                    table = pa.Table.from_batches([batch]).filter(pa.array(mask))
                    yield self._in_layout(_with_row_hash(table, bits))

        file.write_all(kept())

    def _in_layout(self, table: pa.Table) -> pa.Table:
        """Every listed column (NULL where missing), extras, then the meta columns (the
        write's constants unless the input had them)."""
        n = table.num_rows
        names = set(table.column_names)
        schema = layout_schema(self.spec, names - self.spec.columns.keys() - META_COLUMNS.keys())
        # text keeps the form it came in (dictionary-encoded from a CSV)
        schema = pa.schema([table.schema.field(f.name) if f.name in names else f for f in schema])
        if table.schema.equals(schema):
            return table
        constants = {"_source": self.source, "_extracted_at": self.extracted_at}
        nulls: dict[pa.DataType, pa.Array] = {}  # one all-NULL array per type serves every missing column
        columns = []
        for f in schema:
            if f.name in names:
                column = table.column(f.name)
            elif f.name in constants and f.type == pa.string():  # one value: dictionary-encoded
                column = pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), pa.array([constants[f.name]]))
            elif f.name in constants:
                column = pa.repeat(pa.scalar(constants[f.name], f.type), n)
            else:
                kind = TEXT if f.type == pa.string() else f.type
                column = nulls.setdefault(kind, pa.nulls(n, kind))
            columns.append(column)
        return pa.Table.from_arrays(columns, names=schema.names)

    def close(self, flush: bool = True) -> None:
        """Finish every month from what is written, spooled and buffered; after a failure
        (``flush=False``) only remove the files and spools."""
        self._stored.clear()
        try:
            if flush:
                months = sorted(set(self._pending) | set(self._spools) | set(self._files))
                # two months at a time: Parquet encoding and numpy release the GIL
                with ThreadPoolExecutor(2, thread_name_prefix="aps-usage-month-file") as pool:
                    for _ in pool.map(self._finish_month, months):
                        pass
                return
            for staged in self.staged.values():
                staged.delete()
            self.staged.clear()
        finally:
            self._seen_slots = None
            self._pending.clear()
            for part in [*self._spools.values(), *self._hash_spools.values(), *self._files.values(),
                         *self._file_hashes.values()]:
                part.delete()
            for parts in (self._spools, self._hash_spools, self._files, self._file_hashes):
                parts.clear()


@dataclass
class _StagedMonth:
    """A month's staged rows: those of ``file`` (written while staging, each the first of its
    row hash in the write), then those of ``spool``. "In order" below means in that order."""

    spool: _RowFile
    hashes: _RowFile  # the spooled rows' hash lanes, in spool order
    layout: Callable[[pa.Table], pa.Table]
    file: MonthFile | None = None
    file_hashes: _RowFile | None = None  # the lanes of the file's rows, in file order

    @property
    def rows(self) -> int:
        return (self.file.rows if self.file is not None else 0) + self.spool.rows

    @property
    def whole(self) -> bool:
        """Whether all of the month's rows are in ``file``, each row hash once: the commit
        can add the file as it is."""
        return self.file is not None and not self.spool.rows

    def hash_batches(self) -> Iterator[pa.RecordBatch]:
        if self.file_hashes is not None:
            yield from self.file_hashes.all_batches()
        yield from self.hashes.all_batches()

    @cached_property
    def keep(self) -> np.ndarray | None:
        """Over the month's rows in order: False for a repeat of an earlier row; None when
        nothing repeats. Found when the commit first needs it, on its month-file threads."""
        return None if self.whole else _first_of_equal_rows(self.hash_batches)

    def tables(self, keep: np.ndarray | None = None) -> Iterator[pa.Table]:
        """The rows ``keep`` marks (by default: the first of equal rows), with their
        ``_row_hash``, in the write's layout."""
        keep = self.keep if keep is None else keep
        row = 0
        for table in self.file.tables() if self.file is not None else ():  # with their _row_hash
            n = table.num_rows
            if keep is not None:
                table = table.filter(pa.array(keep[row: row + n]))
            row += n
            if table.num_rows:
                yield self.layout(table)
        for batch, lanes in zip(self.spool.all_batches(), self.hashes.all_batches()):
            table, bits = pa.Table.from_batches([batch]), _bits_of(lanes)
            if keep is not None:
                mask = keep[row: row + batch.num_rows]
                table, bits = table.filter(pa.array(mask)), bits[mask]
            row += batch.num_rows
            if table.num_rows:
                yield self.layout(_with_row_hash(table, bits))

    def all_bits(self) -> np.ndarray:
        return _all_bits(self.hash_batches())

    def new_rows(self, seen: SeenHashes) -> np.ndarray:
        """Over the month's rows in order: True for a row to add, the first of its equal rows
        in this write and not in ``seen``. Reads only the hashes, so that a month with nothing
        new never reads its rows back."""
        if not len(seen):
            return np.ones(self.rows, dtype=bool) if self.keep is None else self.keep.copy()
        # looked up a spooled batch at a time, not the month's hashes (16 bytes a row) and the
        # lookup's temporaries all at once (a 12M-row re-import: 384-399 -> 379-389 MB peak)
        new = np.concatenate([seen.absent_bits(_bits_of(b)) for b in self.hash_batches()]
                             or [np.empty(0, dtype=bool)])
        return new if self.keep is None else new & self.keep

    def delete(self) -> None:
        for part in (self.spool, self.hashes, self.file, self.file_hashes):
            if part is not None:
                part.delete()


def _not_in(held: _RowFile | None, hashes: _RowFile) -> np.ndarray:
    """Over the rows of ``hashes``: True for a row whose hash ``held`` does not have. Both are
    read a batch at a time; only the lanes of ``hashes`` (the few spooled rows) are held."""
    bits = _all_bits(hashes.all_batches())
    if held is None or not held.rows or not len(bits):
        return np.ones(len(bits), dtype=bool)
    spooled = SeenHashes()
    spooled.add_bits([bits])
    # which top 20 bits of a first lane the spooled rows have (a 1 MB table): a held row is
    # looked up by its hash only when its top bits are among them. Looking every held row up
    # took 0.14 s of CPU for a 2M-row import's months, this 0.03
    tops = np.zeros(1 << 20, dtype=bool)
    tops[bits[:, 0] >> np.uint64(44)] = True

    def candidates() -> Iterator[np.ndarray]:
        for batch in held.all_batches():
            first = batch.column(0).to_numpy()
            rows = np.flatnonzero(tops[first >> np.uint64(44)])
            if len(rows):
                lanes = np.stack([first[rows], batch.column(1).to_numpy()[rows]], axis=1)
                yield lanes[~spooled.absent_bits(lanes)]

    found = SeenHashes()  # the held rows equal to a spooled one
    found.add_bits(candidates())
    return found.absent_bits(bits) if len(found) else np.ones(len(bits), dtype=bool)


def _first_of_equal_rows(batches: Callable[[], Iterable[pa.RecordBatch]]) -> np.ndarray | None:
    """Over a month's rows in order (their hash lanes, as ``batches()`` gives them): True for
    the first row of each row hash, False for the repeats; None when no hash repeats. The
    first lane of every hash is sorted (8 bytes a row); only rows whose lanes repeat are
    compared by both lanes."""
    keys = np.concatenate([first_lane(_bits_of(b)) for b in batches()] or [np.empty(0, np.uint64)])
    # sorted values, not a stable argsort: 0.09 s instead of 0.17 for 2M rows
    ordered = np.sort(keys)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    if not len(repeated):
        return None
    # every row whose first lane repeats, by binary search (np.isin sorted the keys again)
    repeated = np.unique(repeated)
    at = np.minimum(np.searchsorted(repeated, keys), len(repeated) - 1)
    positions = np.flatnonzero(repeated[at] == keys)
    # a second pass over the spool for the candidates' both lanes: keeping them all from the
    # first pass would cost 16 bytes a row instead of 8
    full, start = [], 0
    for batch in batches():
        end = start + batch.num_rows
        inside = positions[(positions >= start) & (positions < end)] - start
        full.append(_bits_of(batch)[inside])
        start = end
    _, first = np.unique(np.concatenate(full), axis=0, return_index=True)
    keep = np.ones(len(keys), dtype=bool)
    keep[positions] = False
    keep[positions[first]] = True  # positions are in row order, np.unique gives each first index
    return keep


class _RowFile:
    """Tables appended to an Arrow IPC stream file (a new file when the columns change), read
    back one batch at a time: a month's rows, a month's row hashes. Never a partition file."""

    def __init__(self, new_path: Callable[[], Path]):
        self.new_path = new_path
        self.paths: list[Path] = []
        self.schemas: list[pa.Schema] = []  # of each path
        self.rows = 0  # rows written
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sink: pa.OSFile | None = None
        self._schema: pa.Schema | None = None

    def add(self, table: pa.Table) -> None:
        if self._writer is None or not self._schema.equals(table.schema):
            self.close()
            self.paths.append(self.new_path().with_suffix(".arrow"))
            self._sink = pa.OSFile(str(self.paths[-1]), "wb")
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
            self._schema = table.schema
            self.schemas.append(table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    @staticmethod
    def batches(path: Path) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(path)) as source:  # not memory-mapped: read batch by batch
            yield from pa.ipc.open_stream(source)

    def all_batches(self) -> Iterator[pa.RecordBatch]:
        for path in self.paths:
            yield from self.batches(path)

    def delete(self) -> None:
        self.close()
        for p in self.paths:
            p.unlink(missing_ok=True)
        self.paths = []
        self.schemas = []
        self.rows = 0
