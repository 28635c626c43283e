"""One write of a transaction, staged locally until the commit streams it into the Delta table.

A staged row has the input's columns (listed ones typed, extras as text) plus ``_source``,
``_extracted_at`` and ``_row_hash``. DuckDB hashes a batch in a worker thread while the
caller produces the next one (the CSV reader and converters release the GIL), then the rows
are split by month and spooled per month to an Arrow IPC stream in local scratch (see
:class:`_MonthFiles` for why).

Duplicates within the write are dropped: every row of a write has the same ``_source`` and
``_extracted_at``, so of equal rows the first is kept. Equal rows have the same usage date,
so they are in the same month: when the input ends, the first 64 bits of each month's row
hashes are sorted (8 bytes a row), rows whose bits repeat are compared by their full hash,
and only the first of equal rows is kept. Memory follows the rows of the largest month,
never the whole input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import InputError
from .rowhash import SeenHashes, first_64_bits, hash_bits, row_hashes
from .schemas import META_COLUMNS, DatasetSpec

STAGING_ROW_GROUP = 64_000  # rows of a month gathered before they go to its spool
STAGING_BUFFER_ROWS = 40_000  # rows buffered across months: past it the fullest month is spooled


@dataclass
class Staged:
    """A write's rows, typed, hashed and de-duplicated, spooled by month until the commit."""

    months: dict[str, _StagedMonth]  # month ("YYYY-MM", or "" when not partitioned) -> its spool
    rows: int  # rows received
    columns: set[str]  # every column the write brought (listed, extra, meta)

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
    cursor: duckdb.DuckDBPyConnection,
    new_path: Callable[[], Path],
    after_batch: Callable[[], None] = lambda: None,
) -> Staged:
    """Stage ``tables`` (conformed to the dataset's types) for ``spec``; ``cursor`` hashes
    (in a worker thread: one DuckDB thread is enough, the other core reads the input)."""
    use_lean_memory_pool()
    months = _MonthFiles(spec, new_path, source, extracted_at)
    rows = 0
    try:
        # one table hashed ahead while the caller reads the next
        with ThreadPoolExecutor(1, thread_name_prefix="aps-usage-row-hash") as pool:
            ahead: Future | None = None
            try:
                for table in tables:
                    months.check(table, source)
                    rows += table.num_rows
                    job = pool.submit(_with_hash, cursor, spec, table)
                    if ahead is not None:
                        months.add(ahead.result())
                    ahead = job
                    after_batch()
                if ahead is not None:
                    months.add(ahead.result())
                    ahead = None
            finally:
                if ahead is not None:
                    ahead.cancel()
        release_memory()  # the reading buffers, before the months are de-duplicated
        months.close()
    except BaseException:
        months.close(flush=False)
        raise
    return Staged(months.staged, rows, months.columns)


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


def _with_hash(cursor, spec: DatasetSpec, table: pa.Table) -> pa.Table:
    hashes = row_hashes(cursor, spec, table) if table.num_rows else pa.array([], pa.string())
    if "_row_hash" in table.column_names:  # never trusted from the input
        table = table.drop_columns(["_row_hash"])
    return table.append_column(pa.field("_row_hash", pa.string()), hashes)


class _MonthFiles:
    """A write's rows split by month and spooled while the input is read, then de-duplicated
    month by month when the input ends (the commit streams them into the Delta table).

    The rows of many months come interleaved, so a month's rows arrive a few thousand at a
    time. A month's rows are appended to an Arrow IPC stream (local scratch), which keeps
    nothing in memory, in slices of up to :data:`STAGING_ROW_GROUP` rows.

    A month's row hashes are spooled apart as well, so that its duplicates can be found (see
    :func:`_first_of_equal_rows`) before its rows are read back."""

    def __init__(self, spec: DatasetSpec, new_path: Callable[[], Path], source: str, extracted_at: datetime):
        self.spec = spec
        self.new_path = new_path
        self.source = source
        self.extracted_at = extracted_at
        self.staged: dict[str, _StagedMonth] = {}
        self.columns: set[str] = set()
        self._spools: dict[str, _RowFile] = {}
        self._hash_spools: dict[str, _RowFile] = {}
        self._pending: dict[str, list[pa.Table]] = {}

    def check(self, table: pa.Table, source: str) -> None:
        column = self.spec.date_column
        if column and table.num_rows:
            if column not in table.column_names:
                raise InputError(f"{source}: required column '{column}' is missing")
            nulls = table.column(column).null_count
            if nulls:
                raise InputError(f"{source}: column '{column}': {nulls} row(s) have no date")

    def add(self, table: pa.Table) -> None:
        self.columns |= set(table.column_names)
        if not self.spec.date_column:
            self._buffer("", table)
            return
        if not table.num_rows:
            return
        dates = table.column(self.spec.date_column)
        keys = pc.add(pc.multiply(pc.year(dates), 100), pc.month(dates))
        order = pc.sort_indices(keys)  # stable: rows keep their order within a month
        keys = keys.take(order).to_numpy()
        starts = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(keys)]
        for start, end in zip(starts, starts[1:]):
            key = int(keys[start])
            # a take per month, not slices of one: a buffered slice would keep the whole batch alive
            self._buffer(f"{key // 100:04d}-{key % 100:02d}", table.take(order.slice(start, end - start)))

    def flush_all(self) -> None:
        for month in list(self._pending):
            self._flush(month)

    def _buffer(self, month: str, table: pa.Table) -> None:
        # A month's slices are gathered before they go to its spool: fewer, larger writes.
        queued = self._pending.get(month)
        if queued and not queued[0].schema.equals(table.schema):
            self._flush(month)
        self._pending.setdefault(month, []).append(table)
        if sum(t.num_rows for t in self._pending[month]) >= STAGING_ROW_GROUP:
            self._flush(month)
        # bound what is buffered across months: flush the fullest month first
        sizes = {m: sum(t.num_rows for t in ts) for m, ts in self._pending.items()}
        if sum(sizes.values()) >= STAGING_BUFFER_ROWS:
            self._flush(max(sizes, key=sizes.get))

    def _flush(self, month: str) -> None:
        tables = self._pending.pop(month, [])
        if not tables:
            return
        # one record batch per flush: the commit handles each spooled batch with a few calls
        table = pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0].combine_chunks()
        if month not in self._spools:
            self._spools[month] = _RowFile(self.new_path)
            self._hash_spools[month] = _RowFile(self.new_path)
        self._spools[month].add(table)
        self._hash_spools[month].add(table.select(["_row_hash"]))

    def _finish_month(self, month: str) -> None:
        """Which of the month's spooled rows to keep (the first of equal rows)."""
        spool, hashes = self._spools.pop(month), self._hash_spools.pop(month)
        spool.close()
        hashes.close()
        # the hash spool stays for the commit, which reads it to find the rows to add
        self.staged[month] = _StagedMonth(spool, hashes, _first_of_equal_rows(hashes), self._in_layout)

    def _in_layout(self, table: pa.Table) -> pa.Table:
        """Every listed column (NULL where missing), extras, then the meta columns (the
        write's constants unless the input had them)."""
        n = table.num_rows
        names = set(table.column_names)
        schema = layout_schema(self.spec, names - self.spec.columns.keys() - META_COLUMNS.keys())
        if table.schema.equals(schema):
            return table
        constants = {"_source": self.source, "_extracted_at": self.extracted_at}
        nulls: dict[pa.DataType, pa.Array] = {}  # one all-NULL array per type serves every missing column
        columns = []
        for f in schema:
            if f.name in names:
                columns.append(table.column(f.name))
            elif f.name in constants:
                columns.append(pa.repeat(pa.scalar(constants[f.name], f.type), n))
            else:
                columns.append(nulls.setdefault(f.type, pa.nulls(n, f.type)))
        return pa.Table.from_arrays(columns, schema=schema)

    def close(self, flush: bool = True) -> None:
        """De-duplicate every month from what is spooled and buffered; after a failure
        (``flush=False``) only remove the spools."""
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
    hashes: _RowFile  # the rows' hashes, in spool order
    keep: np.ndarray | None  # over the month's rows in spool order; None = keep all
    layout: Callable[[pa.Table], pa.Table]

    def tables(self, keep: np.ndarray | None = None) -> Iterator[pa.Table]:
        """The rows ``keep`` marks (by default: the first of equal rows), in the write's layout."""
        keep = self.keep if keep is None else keep
        row = 0
        for batch in self.spool.all_batches():
            table = pa.Table.from_batches([batch])
            if keep is not None:
                table = table.filter(pa.array(keep[row: row + batch.num_rows]))
            row += batch.num_rows
            if table.num_rows:
                yield self.layout(table)

    def new_rows(self, seen: SeenHashes) -> np.ndarray:
        """Over the month's rows in spool order: True for a row to add, the first of its equal
        rows in this write and not in ``seen``. Reads only the hash spool, so that a month with
        nothing new (a re-import) never reads its rows back."""
        if not len(seen):
            return np.ones(self.hashes.rows, dtype=bool) if self.keep is None else self.keep.copy()
        # one lookup for the month (its hashes as 16 bytes a row meanwhile): a lookup per
        # spooled batch cost twice as much
        bits = [hash_bits(b.column(0)) for b in self.hashes.all_batches()]
        new = seen.absent_bits(np.concatenate(bits) if bits else np.empty((0, 2), np.uint64))
        return new if self.keep is None else new & self.keep

    def hashes_of(self, rows: np.ndarray) -> pa.ChunkedArray:
        """The hashes of the rows marked in ``rows`` (over the spool order)."""
        out, start = [], 0
        for batch in self.hashes.all_batches():
            out.append(batch.column(0).filter(pa.array(rows[start: start + batch.num_rows])))
            start += batch.num_rows
        return pa.chunked_array(out, pa.string())

    def delete(self) -> None:
        self.spool.delete()
        self.hashes.delete()


def _first_of_equal_rows(hashes: _RowFile) -> np.ndarray | None:
    """Over a month's rows in spool order: True for the first row of each row hash, False for
    the repeats; None when no hash repeats. The first 64 bits of every hash are sorted (8
    bytes a row); only rows whose bits repeat are compared by their full hash."""
    keys = np.concatenate([first_64_bits(b.column(0)) for b in hashes.all_batches()] or [np.empty(0, np.uint64)])
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeat = ordered[1:] == ordered[:-1]
    if not repeat.any():
        return None
    candidates = np.zeros(len(keys), dtype=bool)
    candidates[order[1:][repeat]] = True
    candidates[order[:-1][repeat]] = True
    positions = np.flatnonzero(candidates)
    # a second pass over the spool for the candidates' full hashes: keeping every full hash
    # from the first pass would cost 32+ bytes a row instead of 8
    full, start = [], 0
    for batch in hashes.all_batches():
        end = start + batch.num_rows
        inside = positions[(positions >= start) & (positions < end)] - start
        full.append(batch.column(0).take(pa.array(inside)))
        start = end
    codes = pc.dictionary_encode(pa.concat_arrays(full)).indices.to_numpy()
    keep = np.ones(len(keys), dtype=bool)
    keep[positions] = False
    keep[positions[np.unique(codes, return_index=True)[1]]] = True  # positions are in row order
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
