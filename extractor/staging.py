"""One write of a transaction, staged as per-month Parquet files in the layout of a partition
file, so that a month with nothing to merge is renamed into place at the commit.

A staged row has every listed column of the dataset (NULL where the input has none), the
input's extra columns (text, sorted by name), then ``_source``, ``_extracted_at`` and
``_row_hash``. DuckDB hashes a batch in a worker thread while the caller produces the next
one (the CSV reader and converters release the GIL), then the rows are split by month and
spooled per month to an Arrow IPC stream; at the end each month is written as one Parquet
file in row groups of :data:`STAGING_ROW_GROUP` rows (see :class:`_MonthFiles` for why).

Duplicates within the write are dropped on the way when every row of the write has the same
``_source`` and ``_extracted_at`` (an import, an API call): of equal rows the merge keeps
the newest, and these are tied, so keeping the first is what the merge would do. A row whose
hash a fixed-size filter (:class:`~.rowhash.SeenFilter`) may have seen is set aside; at the
end the set-aside rows of a month are checked against the full hashes of its staged rows,
and those that are not duplicates after all are added. The set-aside rows are checked in
chunks of :data:`SUSPECTS_CHUNK` rows, one pass over the staged hashes each, so memory stays
bounded however many rows are set aside (a file that holds most rows twice, or a file so
large that the filter fills up).
"""

from __future__ import annotations

import itertools
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
import pyarrow.parquet as pq

from .errors import InputError
from .rowhash import SeenFilter, row_hashes
from .schemas import META_COLUMNS, DatasetSpec

STAGING_ROW_GROUP = 64_000  # rows of a row group of a staged (and so of a partition) file
STAGING_BUFFER_ROWS = 40_000  # rows buffered across months: past it the fullest month is spooled
SUSPECTS_CHUNK = 50_000  # set-aside rows checked against the staged hashes at once
# staged hashes probed per call: index_in builds its hash table of the set-aside hashes on
# every call, so the small batches the hashes were written in made a check 20x slower
HASH_PROBE_ROWS = 262_144


@dataclass
class Staged:
    files: dict[str, list[Path]]  # month ("YYYY-MM", or "" when not partitioned) -> staged files
    rows: int  # rows received
    deduped: bool  # no two staged rows share a row hash


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
    set_aside = _RowFile(new_path)
    seen = SeenFilter()
    deduped = True
    rows = 0

    def sink(table: pa.Table) -> None:
        nonlocal deduped
        if "_source" in table.column_names or "_extracted_at" in table.column_names:
            deduped = False  # per-row values: the merge decides which of equal rows is newest
        elif deduped and table.num_rows:
            new = seen.new_rows(table.column("_row_hash").combine_chunks())
            if not new.all():
                mask = pa.array(new)
                set_aside.add(table.filter(pc.invert(mask)))
                table = table.filter(mask)
        months.add(table)

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
                        sink(ahead.result())
                    ahead = job
                    after_batch()
                if ahead is not None:
                    sink(ahead.result())
                    ahead = None
            finally:
                if ahead is not None:
                    ahead.cancel()
        set_aside.close()
        staged_hashes = months.close_hashes()
        release_memory()  # the reading buffers, before the set-aside rows are checked
        if deduped:
            extras = set_aside.not_in(staged_hashes, months.pending_hashes(), SUSPECTS_CHUNK)
        else:  # the merge de-duplicates: the set-aside rows go with the others
            extras = set_aside.chunks(SUSPECTS_CHUNK)
        for extra in extras:
            months.add(extra)
            release_memory()  # the chunk just checked, before the next one is read
        set_aside.delete()
        if staged_hashes is not None:
            staged_hashes.unlink()
        months.close()
    finally:
        months.close(flush=False)
        set_aside.close()
    return Staged(months.files, rows, deduped)


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


def _regrouped_tables(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows in tables of ``rows`` rows (the last one shorter)."""
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
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


def _regrouped(arrays: Iterable[pa.Array | pa.ChunkedArray], rows: int) -> Iterator[pa.Array]:
    """The same values in arrays of about ``rows`` values."""
    pending: list[pa.Array] = []
    count = 0
    for array in arrays:
        for chunk in (array.chunks if isinstance(array, pa.ChunkedArray) else [array]):
            pending.append(chunk)
            count += len(chunk)
            if count >= rows:
                yield pa.concat_arrays(pending)
                pending, count = [], 0
    if pending:
        yield pa.concat_arrays(pending)


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
    """Staged files: rows split by month, spooled while the input is read, then written in
    the partition layout as one Parquet file per month (per set of columns) in row groups of
    :data:`STAGING_ROW_GROUP` rows.

    The rows of many months come interleaved, so a month's rows arrive a few thousand at a
    time. Written straight to Parquet they made thousands of small row groups, and an open
    Parquet writer keeps the metadata of every row group it wrote (about 0.8 KB per column
    chunk) until it is closed: memory grew with the input (40 MB at 8M rows). A month's rows
    are therefore appended to an Arrow IPC stream, which keeps nothing in memory, and only
    one month's Parquet file is open at a time.

    The row hashes of every month also go to one file of their own, to check the set-aside
    rows against."""

    def __init__(self, spec: DatasetSpec, new_path: Callable[[], Path], source: str, extracted_at: datetime):
        self.spec = spec
        self.new_path = new_path
        self.source = source
        self.extracted_at = extracted_at
        self.files: dict[str, list[Path]] = {}
        self._spools: dict[str, _RowFile] = {}
        self._pending: dict[str, list[pa.Table]] = {}
        self._hashes: _RowFile | None = _RowFile(new_path)

    def check(self, table: pa.Table, source: str) -> None:
        column = self.spec.date_column
        if column and table.num_rows:
            if column not in table.column_names:
                raise InputError(f"{source}: required column '{column}' is missing")
            nulls = table.column(column).null_count
            if nulls:
                raise InputError(f"{source}: column '{column}': {nulls} row(s) have no date")

    def add(self, table: pa.Table) -> None:
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

    def close_hashes(self) -> Path | None:
        """Close the file of the hashes of the rows written so far; its path, if any."""
        hashes, self._hashes = self._hashes, None
        hashes.close()
        return hashes.path

    def pending_hashes(self) -> list[pa.ChunkedArray]:
        """The hashes of the rows buffered, not written yet."""
        return [t.column("_row_hash") for tables in self._pending.values() for t in tables]

    def flush_all(self) -> None:
        for month in list(self._pending):
            self._flush(month)

    def _buffer(self, month: str, table: pa.Table) -> None:
        # Thousands of tiny row groups would make the file slow to read and its footer large.
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
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        spool = self._spools.get(month)
        if spool is None:
            spool = self._spools[month] = _RowFile(self.new_path, buffer_rows=0)
        spool.add(table)
        if self._hashes is not None:
            self._hashes.add(table.select(["_row_hash"]))

    def _write_month(self, month: str, spool: _RowFile) -> None:
        """The month's spooled rows as Parquet files in the partition layout."""
        spool.close()
        for path in spool.paths:
            with _OpenedLater(self.new_path) as writer:
                tables = (pa.Table.from_batches([b]) for b in _RowFile.batches(path))
                for group in _regrouped_tables(tables, STAGING_ROW_GROUP):
                    writer.write(self._in_layout(group))
            if writer.path is not None:
                self.files.setdefault(month, []).append(writer.path)
            path.unlink()

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
        """Write every month's files from what is spooled and buffered; after a failure
        (``flush=False``) only remove the spools."""
        if flush:
            self.flush_all()
        self._pending.clear()
        spools, self._spools = self._spools, {}
        try:
            for month in sorted(spools) if flush else ():
                self._write_month(month, spools.pop(month))
        finally:
            for spool in spools.values():
                spool.close()
                spool.delete()
        if self._hashes is not None:
            self._hashes.close()


class _OpenedLater:
    """A Parquet writer opened on the first table written to it (at a path from ``new_path``)."""

    def __init__(self, new_path: Callable[[], Path]):
        self.new_path = new_path
        self.path: Path | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path = self.new_path()
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def __enter__(self) -> "_OpenedLater":
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.close()


class _RowFile:
    """Rows appended to an Arrow IPC file (a new file if the columns change), read back one
    batch at a time: the set-aside rows, the staged row hashes. Never a partition file."""

    def __init__(self, new_path: Callable[[], Path], buffer_rows: int = STAGING_ROW_GROUP):
        self.new_path = new_path
        self.buffer_rows = buffer_rows  # rows gathered before a write (0: each table at once)
        self.paths: list[Path] = []
        self.schemas: dict[Path, pa.Schema] = {}
        self.rows = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sink: pa.OSFile | None = None
        self._schema: pa.Schema | None = None
        self._pending: list[pa.Table] = []

    @property
    def path(self) -> Path | None:
        return self.paths[-1] if len(self.paths) == 1 else None

    def add(self, table: pa.Table) -> None:
        if self._pending and not self._pending[0].schema.equals(table.schema):
            self._flush()
        self._pending.append(table)
        self.rows += table.num_rows
        if sum(t.num_rows for t in self._pending) >= self.buffer_rows or len(self._pending) >= 256:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending = []
        if self._writer is None or not self._schema.equals(table.schema):
            self._close_file()
            self.paths.append(self.new_path().with_suffix(".arrow"))
            self.schemas[self.paths[-1]] = table.schema
            self._sink = pa.OSFile(str(self.paths[-1]), "wb")
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
            self._schema = table.schema
        self._writer.write_table(table)

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    def close(self) -> None:
        self._flush()
        self._close_file()

    @staticmethod
    def batches(path: Path) -> Iterator[pa.RecordBatch]:
        with pa.OSFile(str(path)) as source:  # not memory-mapped: read batch by batch
            yield from pa.ipc.open_stream(source)

    def chunks(self, rows: int) -> Iterator[pa.Table]:
        """The rows in tables of about ``rows`` rows (one file's schema each)."""
        for path in self.paths:
            pending: list[pa.RecordBatch] = []
            for batch in self.batches(path):
                pending.append(batch)
                if sum(b.num_rows for b in pending) >= rows:
                    yield pa.Table.from_batches(pending)
                    pending = []
            if pending:
                yield pa.Table.from_batches(pending)

    def not_in(self, staged_hashes: Path | None, buffered: list[pa.ChunkedArray], rows: int) -> Iterator[pa.Table]:
        """In chunks of about ``rows`` rows: the rows whose hash is neither staged (in the file
        ``staged_hashes`` or among the ``buffered`` ones) nor on an earlier row."""
        kept: list[pa.Array] = []  # hashes of the rows already yielded (not in staged_hashes)
        for chunk in self.chunks(rows):
            hashes = chunk.column("_row_hash").combine_chunks()
            distinct = pc.unique(hashes)
            staged = np.zeros(len(distinct), dtype=bool)
            batches = [] if staged_hashes is None else self.batches(staged_hashes)
            columns = itertools.chain((b.column(0) for b in batches), buffered, kept)
            for column in _regrouped(columns, HASH_PROBE_ROWS):
                staged[pc.index_in(column, value_set=distinct).drop_null().to_numpy()] = True
            at = pc.index_in(hashes, value_set=distinct).to_numpy()
            first = np.zeros(len(at), dtype=bool)
            first[np.unique(at, return_index=True)[1]] = True
            new = chunk.filter(pa.array(first & ~staged[at]))
            kept.append(new.column("_row_hash").combine_chunks())
            yield new

    def delete(self) -> None:
        for p in self.paths:
            p.unlink(missing_ok=True)
        self.paths = []
