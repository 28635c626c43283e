"""One write of a transaction, staged locally until the commit streams it into the Delta table.

A staged row has the input's columns (listed ones typed, extras as text) plus ``_source`` and
``_extracted_at``; its row hash (``rowhash.py``) is spooled apart as two 64-bit lanes and
written as ``_row_hash`` text only for the rows the commit adds. A worker thread hashes a
table and splits it by month while the caller reads the next one (the CSV reader and
Arrow's kernels release the GIL); each month's rows go to an Arrow IPC spool in local
scratch (see :class:`_MonthFiles` for why).

Rows the table already holds are dropped on the way when the transaction allows it (an
append, see ``Transaction.write``): a month's stored hashes are loaded when the write first
meets the month, so a re-import spools, and the commit reads back, nothing. The commit checks
that no other writer removed those stored rows meanwhile.

Duplicates within the write are dropped too: every row of a write has the same ``_source``
and ``_extracted_at``, so of equal rows the first is kept. Equal rows have the same usage
date, so they are in the same month: when the commit writes a month, the first lane of its
row hashes is sorted (8 bytes a row), rows whose lanes repeat are compared by both lanes,
and only the first of equal rows is kept. Memory follows the rows of the largest month,
never the whole input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .rowhash import RowHasher, SeenHashes, to_hex
from .schemas import META_COLUMNS, TEXT, DatasetSpec

STAGING_ROW_GROUP = 64_000  # rows of a month gathered before they go to its spool
# Rows buffered across months: past it the fullest month is spooled. A 2M-row import's rows
# come from 12 months: at 40,000 the spool batches held ~5,000 rows, and the commit's calls per
# batch cost 0.2-0.3 s; dictionary-encoded text keeps 200,000 rows to ~25 MB more peak RSS.
STAGING_BUFFER_ROWS = 200_000


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


def stage(
    tables: Iterable[pa.Table],
    spec: DatasetSpec,
    *,
    source: str,
    extracted_at: datetime,
    new_path: Callable[[], Path],
    known: Known | None = None,
    after_batch: Callable[[], None] = lambda: None,
) -> Staged:
    """Stage ``tables`` (conformed to the dataset's types) for ``spec``; with ``known``, rows
    the table holds at ``known.version`` are dropped. A worker thread hashes and spools each
    table while the caller reads the next one: reading, and hashing with spooling, each take
    about half of the CPU time of an import (bench/bench_import.py)."""
    use_lean_memory_pool()
    months = _MonthFiles(spec, new_path, source, extracted_at, known)
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
    imported before this package chose it. An explicit ARROW_DEFAULT_MEMORY_POOL is left alone."""
    if not sys.platform.startswith("linux") or os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "jemalloc") != "jemalloc":
        return
    if pa.default_memory_pool().backend_name == "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):  # a pyarrow built without jemalloc
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


class _MonthFiles:
    """A write's rows split by month and spooled while the input is read, then de-duplicated
    month by month when the input ends (the commit streams them into the Delta table).

    The rows of many months come interleaved, so a month's rows arrive a few thousand at a
    time. A month's rows are appended to an Arrow IPC stream (local scratch), which keeps
    nothing in memory, in slices of up to :data:`STAGING_ROW_GROUP` rows.

    A month's row hashes are spooled apart (two uint64 a row), so that its duplicates can be
    found (see :func:`_first_of_equal_rows`) before its rows are read back."""

    def __init__(self, spec: DatasetSpec, new_path: Callable[[], Path], source: str, extracted_at: datetime,
                 known: Known | None = None):
        self.spec = spec
        self.new_path = new_path
        self.source = source
        self.extracted_at = extracted_at
        self.staged: dict[str, _StagedMonth] = {}
        self.columns: set[str] = set()
        self.dropped: dict[str, int] = {}
        self.checked: set[str] = set()  # months compared with the stored hashes
        self._known = known
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

    def flush_all(self) -> None:
        for month in list(self._pending):
            self._flush(month)

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

    def _flush(self, month: str) -> None:
        parts = self._pending.pop(month, [])
        if not parts:
            return
        # one record batch per flush: the commit handles each spooled batch with a few calls
        table = pa.concat_tables([t for t, _ in parts]).combine_chunks()
        bits = np.concatenate([b for _, b in parts]) if len(parts) > 1 else parts[0][1]
        if month not in self._spools:
            self._spools[month] = _RowFile(self.new_path)
            self._hash_spools[month] = _RowFile(self.new_path)
        self._spools[month].add(table)
        self._hash_spools[month].add(_bits_table(bits))

    def _finish_month(self, month: str) -> None:
        """The month's spools, closed and handed to the commit (which finds the repeats)."""
        spool, hashes = self._spools.pop(month), self._hash_spools.pop(month)
        spool.close()
        hashes.close()
        # the hash spool stays for the commit, which reads it to find the rows to add
        self.staged[month] = _StagedMonth(spool, hashes, self._in_layout)

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
        """De-duplicate every month from what is spooled and buffered; after a failure
        (``flush=False``) only remove the spools."""
        self._stored.clear()
        if flush:
            self.flush_all()
            for month in sorted(self._spools):
                self._finish_month(month)
        else:
            for staged in self.staged.values():
                staged.delete()
            self.staged.clear()
        self._pending.clear()
        for spool in [*self._spools.values(), *self._hash_spools.values()]:
            spool.close()
            spool.delete()
        self._spools.clear()
        self._hash_spools.clear()


@dataclass
class _StagedMonth:
    spool: _RowFile
    hashes: _RowFile  # the rows' hash lanes, in spool order
    layout: Callable[[pa.Table], pa.Table]

    @cached_property
    def keep(self) -> np.ndarray | None:
        """Over the month's rows in spool order: False for a repeat of an earlier row; None
        when nothing repeats. Found when the commit first needs it, on its month-file threads."""
        return _first_of_equal_rows(self.hashes)

    def tables(self, keep: np.ndarray | None = None) -> Iterator[pa.Table]:
        """The rows ``keep`` marks (by default: the first of equal rows), with their
        ``_row_hash``, in the write's layout."""
        keep = self.keep if keep is None else keep
        row = 0
        for batch, lanes in zip(self.spool.all_batches(), self.hashes.all_batches()):
            table, bits = pa.Table.from_batches([batch]), _bits_of(lanes)
            if keep is not None:
                mask = keep[row: row + batch.num_rows]
                table, bits = table.filter(pa.array(mask)), bits[mask]
            row += batch.num_rows
            if table.num_rows:
                yield self.layout(table.append_column(pa.field("_row_hash", pa.string()), to_hex(bits)))

    def all_bits(self) -> np.ndarray:
        parts = [_bits_of(b) for b in self.hashes.all_batches()]
        return np.concatenate(parts) if parts else np.empty((0, 2), np.uint64)

    def new_rows(self, seen: SeenHashes) -> np.ndarray:
        """Over the month's rows in spool order: True for a row to add, the first of its equal
        rows in this write and not in ``seen``. Reads only the hash spool, so that a month with
        nothing new never reads its rows back."""
        if not len(seen):
            return np.ones(self.hashes.rows, dtype=bool) if self.keep is None else self.keep.copy()
        # looked up a spooled batch at a time, not the month's hashes (16 bytes a row) and the
        # lookup's temporaries all at once (a 12M-row re-import: 384-399 -> 379-389 MB peak)
        new = np.concatenate([seen.absent_bits(_bits_of(b)) for b in self.hashes.all_batches()]
                             or [np.empty(0, dtype=bool)])
        return new if self.keep is None else new & self.keep

    def delete(self) -> None:
        self.spool.delete()
        self.hashes.delete()


def _first_of_equal_rows(hashes: _RowFile) -> np.ndarray | None:
    """Over a month's rows in spool order: True for the first row of each row hash, False for
    the repeats; None when no hash repeats. The first lane of every hash is sorted (8 bytes a
    row); only rows whose lanes repeat are compared by both lanes."""
    keys = np.concatenate([first_lane(_bits_of(b)) for b in hashes.all_batches()] or [np.empty(0, np.uint64)])
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
    for batch in hashes.all_batches():
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
        self.rows = 0
