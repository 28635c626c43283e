"""The raw dataset: one Delta Lake table per dataset under ``<data-dir>/raw/<dataset>``.

Layout (see ``docs/design.md``)::

    <data-dir>/raw/<dataset>/_delta_log/            the table's commits (delta-rs)
    <data-dir>/raw/<dataset>/_month=YYYY-MM/*.parquet   datasets with a date column
    <data-dir>/raw/<dataset>/*.parquet              the others
    <data-dir>/state/                               the salt, the local lock, tokens

A transaction stages incoming rows locally (``staging.py``: typed, hashed, de-duplicated
within the write, spooled by month), then commits each dataset it wrote in ONE Delta commit:
a predicate overwrite when the write replaces something (the replaced rows removed and the
new ones added in the same commit), an append otherwise, of the rows whose ``_row_hash`` is
not already in the month. The dataset's extraction state (cursors, last run) travels in that
same commit's metadata (``commitInfo["aps-usage"]``) and is read back from the table's
history, so the state never runs ahead of the rows, on local disk or object storage.

Delta's commit is atomic (a new log entry created only if absent), so a killed writer leaves
at most data files no commit names (``vacuum`` removes them). Every commit carries the same
app transaction (a Delta ``txn`` action), so of two writers racing for a table (two machines;
on one machine the local lock refuses the second) Delta accepts one and refuses the other,
which commits again from the winner's version: its month hashes re-read, no row added twice;
after a few lost attempts it fails with a clear message and writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Transaction as DeltaTransaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from . import lake
from .errors import InputError, LockedError, UsageError
from .logs import log
from .rowhash import ROW_HASH_VERSION, RowHasher, SeenHashes
from .rowhash import sql_ident as _ident
from .rowhash import sql_str as _sql_str
from .schemas import DATASETS, META_COLUMNS, TEXT, DatasetSpec
from .staging import (
    Known,
    MonthFile,
    Staged,
    file_schema,
    layout_schema,
    release_memory,
    stage,
)

if TYPE_CHECKING:
    import duckdb

try:  # POSIX advisory locks; released by the kernel when a process dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MONTH_COLUMN = "_month"  # the partition column ("YYYY-MM") of datasets with a date
STATE_KEY = "aps-usage"  # commitInfo key holding the dataset's state after the commit
APP_ID = "aps-usage"  # the app transaction (Delta ``txn`` action) of every commit: see _commit_properties
# Commits made again when another writer committed first (then: LockedError, nothing written).
COMMIT_ATTEMPTS = int(os.environ.get("APS_USAGE_COMMIT_ATTEMPTS", "5"))
# Files no commit has needed for this long are deleted by vacuum (restore reaches that far back).
VACUUM_RETENTION_HOURS = int(os.environ.get("APS_USAGE_VACUUM_RETENTION_HOURS", str(7 * 24)))
# DuckDB's share of memory when it scans a table (stats, replace predicates).
DUCKDB_MEMORY_LIMIT = os.environ.get("APS_USAGE_DUCKDB_MEMORY", "128MB")


@dataclass
class Replace:
    """Which existing rows the incoming rows replace (see docs/design.md)."""

    match: dict[str, Any] | None = None
    date_from: date | None = None
    date_to: date | None = None
    snapshot: bool = False
    everything: bool = False


@dataclass
class _Write:
    staged: Staged
    source: str
    replace: Replace | None


def crash_point(name: str) -> None:
    """Fault injection for the reliability tests: die here, as SIGKILL would, when
    APS_USAGE_CRASH_AT names this point; when APS_USAGE_PAUSE_AT does, leave a marker
    ``<APS_USAGE_PAUSE_UNTIL>.<pid>-<thread>`` and wait (at most a minute) until the file
    APS_USAGE_PAUSE_UNTIL exists, so a test can make two writers commit at the same moment."""
    if os.environ.get("APS_USAGE_CRASH_AT") == name:
        os.kill(os.getpid(), 9)
    if os.environ.get("APS_USAGE_PAUSE_AT") == name:
        release = Path(os.environ["APS_USAGE_PAUSE_UNTIL"])
        Path(f"{release}.{os.getpid()}-{threading.get_ident()}").touch()
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _now() -> datetime:
    return datetime.now(UTC)


def full_schema(spec: DatasetSpec) -> pa.Schema:
    return pa.schema(list(spec.schema) + [pa.field(k, v) for k, v in META_COLUMNS.items()])


def table_schema(spec: DatasetSpec, extras: Iterable[str] = ()) -> pa.Schema:
    """The Delta table's columns: listed, extra (text, by name), meta, then the partition."""
    schema = layout_schema(spec, extras)
    return schema.append(pa.field(MONTH_COLUMN, pa.string())) if spec.date_column else schema


def _conform(batch: pa.RecordBatch | pa.Table, spec: DatasetSpec, source: str) -> pa.Table:
    """Cast listed columns to their type, other columns to string; names must be canonical."""
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{source}: duplicate column(s) {', '.join(dupes)}")
    arrays, fields = [], []
    for name, column in zip(names, table.columns):
        if name.startswith("_") and name not in META_COLUMNS:
            continue
        target = spec.columns.get(name) or META_COLUMNS.get(name) or pa.string()
        if column.type == TEXT and pa.types.is_string(target):
            target = TEXT  # dictionary-encoded text stays so until its Parquet file
        if column.type != target:
            column = _cast(column, target, source, name)
        arrays.append(column)
        fields.append(pa.field(name, target))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _cast(column: pa.ChunkedArray, target: pa.DataType, source: str, name: str) -> pa.ChunkedArray:
    try:
        if pa.types.is_timestamp(target) and target.tz and pa.types.is_string(column.type):
            try:
                return column.cast(target)
            except pa.ArrowInvalid:  # no offset in the text: the API's timestamps are UTC
                naive = column.cast(pa.timestamp(target.unit))
                return pc.assume_timezone(naive, "UTC").cast(target)
        if pa.types.is_timestamp(column.type) and pa.types.is_date(target):
            return column.cast(pa.date32())
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        detail = str(err).split("\n")[0]
        raise InputError(f"{source}: column '{name}': cannot read as {target}: {detail}") from None


class DataDir:
    """The data directory: one Delta table per raw dataset, the local lock and scratch space."""

    def __init__(self, root: str | os.PathLike[str]):
        self.location = lake.normalize(root)
        self.remote = lake.is_remote(self.location)
        self.storage_options = lake.storage_options(self.location) if self.remote else None
        if self.remote:
            # the lock, scratch space and tokens of this machine; the data and state are remote
            self.root = root if isinstance(root, lake.LocalMirror) else lake.local_mirror(self.location)
        else:
            self.root = Path(self.location)
        self.raw_dir = self.root / "raw"  # local data dirs only
        self.state_dir = self.root / "state"
        self.tmp_dir = self.root / ".tmp"
        self.lock_path = self.state_dir / "lock"
        for d in ([self.state_dir, self.tmp_dir] if self.remote else [self.raw_dir, self.state_dir, self.tmp_dir]):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self.converted: dict[str, int] = {}  # rows per dataset converted from the old layout
        self.upgraded: dict[str, int] = {}  # rows per dataset whose row hashes were recomputed

    # ---- tables ------------------------------------------------------------------------
    def table_uri(self, name: str) -> str:
        if name not in DATASETS:
            raise UsageError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
        return lake.join(self.location, "raw", name)

    def dataset_dir(self, name: str) -> Path:
        """The table's folder (local data dirs)."""
        return Path(self.table_uri(name))

    def table(self, name: str, version: int | None = None) -> DeltaTable | None:
        """The dataset's Delta table at its current (or given) version; None before it exists."""
        try:
            return DeltaTable(self.table_uri(name), version=version, storage_options=self.storage_options)
        except TableNotFoundError:
            return None
        except (DeltaError, OSError) as err:  # e.g. a torn commit file copied by a sync tool
            detail = str(err).splitlines()[0][:200]
            raise UsageError(f"{self.table_uri(name)}: not a readable Delta table ({detail}); restore the "
                             "folder from a backup, or move it away and extract or import that dataset again") from None

    def ensure_tables(self) -> None:
        """Create every dataset's (empty, typed) table, so readers never miss a dataset or
        column. Converts a data dir in the layout before Delta on the way (``migrate.py``)."""
        from .migrate import migrate_old_layout

        if not self.remote:
            self.converted.update(migrate_old_layout(self))
        _each_table(self._ensure_table)

    def _ensure_table(self, name: str) -> None:
        if self.table(name) is None:
            spec = DATASETS[name]
            try:
                DeltaTable.create(
                    self.table_uri(name), table_schema(spec),
                    partition_by=[MONTH_COLUMN] if spec.date_column else None, mode="ignore",
                    storage_options=self.storage_options,
                )
            except DeltaError:  # another machine created it first: its version 0 is as good
                if self.table(name) is None:
                    raise

    def ensure_schema_files(self) -> None:
        """Before dbt runs (build.py, under the lock): every table exists, and for each local
        table ``<data-dir>/dbt/raw_files/<dataset>.txt`` lists the Parquet files of its current
        version (relative to the table, one a line) for Spark without the Delta jars
        (register_raw_sources.sql). Not in the table's folder: vacuum would delete it there,
        and Spark skips files whose name starts with ``_``."""
        self.ensure_tables()
        if self.remote:
            return
        out = self.root / "dbt" / "raw_files"
        out.mkdir(parents=True, exist_ok=True)
        for name in DATASETS:
            folder = self.dataset_dir(name)
            listed = "".join(f"{Path(uri.removeprefix('file://')).relative_to(folder).as_posix()}\n"
                             for uri in self.data_files(name))
            tmp = out / f".{name}.txt.tmp"
            tmp.write_text(listed)
            os.replace(tmp, out / f"{name}.txt")

    def data_files(self, name: str) -> list[str]:
        """The Parquet files of the table's current version."""
        dt = self.table(name)
        return sorted(dt.file_uris()) if dt is not None else []

    def read(self, name: str, version: int | None = None) -> pa.Table:
        """The whole dataset as an Arrow table (for tests and small datasets)."""
        dt = self.table(name, version)
        spec = DATASETS[name]
        if dt is None:
            return full_schema(spec).empty_table()
        table = pa.table(dt.to_pyarrow_dataset().to_table())
        return table.drop_columns([MONTH_COLUMN]) if MONTH_COLUMN in table.column_names else table

    def connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        import duckdb  # only where SQL runs: an import or an append never loads DuckDB (30-45 MB RSS)

        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT, "threads": threads or max(1, os.cpu_count() or 1)})
        con.execute("SET TimeZone='UTC'")
        con.execute("SET preserve_insertion_order=false")
        con.execute(f"SET temp_directory={_sql_str(str(self.tmp_dir / 'duckdb-spill'))}")
        return con

    # ---- state (in each table's commits) -----------------------------------------------
    def read_state(self, names: Iterable[str] = DATASETS) -> dict[str, Any]:
        """``{"datasets": {dataset: {key: value}}, "last_run": {dataset: {...}}}`` as of each
        table's current version (of the ``names`` given: each one reads that table's log)."""
        out: dict[str, Any] = {"datasets": {}, "last_run": {}}
        for name in names:
            info = self._table_state(name)
            if info.get("state"):
                out["datasets"][name] = info["state"]
            if info.get("last_run"):
                out["last_run"][name] = info["last_run"]
        return out

    def _table_state(self, name: str, dt: DeltaTable | None = None, as_of: int | None = None) -> dict[str, Any]:
        """The state carried by the newest commit up to ``as_of`` (the table's version) that has one.
        ``dt`` must be loaded at its latest version: delta-rs numbers the history of a table
        loaded at an older version wrongly."""
        dt = dt or self.table(name)
        if dt is None:
            return {}
        current = dt.version() if as_of is None else as_of
        for limit in (20, None):  # the newest commits first: reading every commit file is slow on S3
            for commit in dt.history(limit):  # newest first; a vacuum or optimize commit carries none
                if STATE_KEY in commit and commit.get("version", 0) <= current:
                    try:
                        return json.loads(commit[STATE_KEY])
                    except (TypeError, json.JSONDecodeError):
                        raise UsageError(f"{self.table_uri(name)}: version {commit.get('version')}: "
                                         "the aps-usage state in its commit is not valid JSON") from None
        return {}

    def stats(self) -> list[dict[str, Any]]:
        """Per dataset: rows, date range, newest extraction and last successful run."""
        out = []
        con = self.connect()
        try:
            for name, spec in DATASETS.items():
                dt = self.table(name)
                row: dict[str, Any] = {"dataset": name, "rows": 0, "min_date": None, "max_date": None,
                                       "newest_extracted_at": None, "files": 0, "version": None}
                if dt is not None:
                    row["files"] = len(dt.file_uris())
                    row["version"] = dt.version()
                    dataset = dt.to_pyarrow_dataset()  # noqa: F841 (read by DuckDB below)
                    date_expr = (f"min({_ident(spec.date_column)}), max({_ident(spec.date_column)})"
                                 if spec.date_column else "NULL, NULL")
                    try:
                        r = con.execute(f"SELECT count(*), {date_expr}, max(_extracted_at) FROM dataset").fetchall()[0]
                    except (*_duckdb_errors("Error"), pa.ArrowInvalid, OSError) as err:
                        raise _unreadable_error(dt, err) from None
                    row.update(rows=r[0], min_date=r[1], max_date=r[2], newest_extracted_at=r[3])
                row["last_run"] = self._table_state(name, dt).get("last_run") if dt is not None else None
                out.append(row)
        finally:
            con.close()
        return out

    # ---- history -----------------------------------------------------------------------
    def history(self, name: str) -> list[dict[str, Any]]:
        """Each version of the table, newest first: when, which command, rows added and
        removed, sources."""
        dt = self.table(name)
        out = []
        for commit in dt.history() if dt is not None else []:
            info = {}
            if STATE_KEY in commit:
                try:
                    info = json.loads(commit[STATE_KEY])
                except (TypeError, json.JSONDecodeError):
                    info = {}
            metrics = commit.get("operationMetrics") or {}
            out.append({
                "version": commit.get("version"),
                "at": datetime.fromtimestamp(commit["timestamp"] / 1000, UTC).isoformat(timespec="seconds"),
                "operation": commit.get("operation"),
                "command": info.get("command", commit.get("operation", "").lower()),
                "rows_added": info.get("rows_added", metrics.get("num_added_rows")),
                "rows_removed": info.get("rows_removed", metrics.get("num_deleted_rows")),
                "sources": (info.get("last_run") or {}).get("sources", []),
            })
        return out

    def restore(self, name: str, version: int, command: str = "restore") -> None:
        """Make ``version`` the current content of the table again, in a new commit that also
        carries the state of that version (so the next extraction re-fetches what it undid)."""
        self._require_lock()
        dt = self.table(name)
        if dt is None:
            raise UsageError(f"{name}: no table yet")
        current = dt.version()
        if not 0 <= version <= current:
            raise UsageError(f"{name}: no version {version} (versions 0..{current})")
        state = self._table_state(name, dt, as_of=version)
        rows_now = _count(dt)
        rows_then = _count(self.table(name, version))
        state.update(command=f"{command} --version {version}", rows_added=max(0, rows_then - rows_now),
                     rows_removed=max(0, rows_now - rows_then))
        try:
            dt.restore(version, commit_properties=_commit_properties(dt, state))
        except CommitFailedError as err:
            raise LockedError(f"{name}: another writer committed while restoring; run restore again ({err})") from None

    def upgrade_row_hashes(self) -> dict[str, int]:
        """Recompute ``_row_hash`` of every table whose rows were hashed before
        :data:`~.rowhash.ROW_HASH_VERSION` (a data dir of an earlier release): one overwrite
        commit per table, so a re-import after the upgrade still finds every stored row.
        Returns the rows rehashed per dataset."""
        self._require_lock()
        upgraded = {}
        stale = [name for name, old in zip(DATASETS, _each_table(self._hashed_before)) if old]
        for name in stale:
            tx = Transaction(self)
            try:
                upgraded[name] = tx.rehash(name)
            finally:
                tx.close()
            log.info("%s: row hashes upgraded to version %d (%d rows)", name, ROW_HASH_VERSION, upgraded[name])
        self.upgraded.update(upgraded)
        return upgraded

    def _hashed_before(self, name: str) -> bool:
        """Whether the table holds rows hashed before :data:`~.rowhash.ROW_HASH_VERSION`."""
        dt = self.table(name)
        return dt is not None and bool(_count(dt)) and self._row_hash_version(name, dt) != ROW_HASH_VERSION

    def _row_hash_version(self, name: str, dt: DeltaTable) -> int | None:
        """The row hash version the table's rows carry, from its newest commit when that one
        says (one commit file read: this runs on every lock, on object storage too)."""
        newest = dt.history(1)
        if newest and STATE_KEY in newest[0]:
            try:
                return json.loads(newest[0][STATE_KEY]).get("row_hash")
            except (TypeError, json.JSONDecodeError, AttributeError):
                pass
        return self._table_state(name, dt).get("row_hash")

    def vacuum(self, retention_hours: int | None = None, dry_run: bool = False) -> dict[str, list[str]]:
        """Delete data files no version within the retention period needs."""
        out = {}
        for name in DATASETS:
            dt = self.table(name)
            if dt is not None:
                out[name] = dt.vacuum(retention_hours=VACUUM_RETENTION_HOURS if retention_hours is None else retention_hours,
                                      dry_run=dry_run, enforce_retention_duration=False)
        return out

    # ---- locking -----------------------------------------------------------------------
    @contextmanager
    def lock(self, purpose: str, wait: float | None = None) -> Iterator[DataDir]:
        """Hold the data dir for one writer on this machine. Waits up to ``wait`` seconds
        (default: env APS_USAGE_LOCK_WAIT, else 0), then LockedError.

        Why a lock beside Delta's optimistic concurrency: a second writer on this machine is
        refused at once instead of staging a whole file only to commit again after the first
        (see ``_commit_with_retries``); and ``build`` holds it so dbt reads one version of
        every table. Writers on different machines are guarded by Delta alone (see design.md)."""
        if wait is None:
            try:
                wait = float(os.environ.get("APS_USAGE_LOCK_WAIT", "0"))
            except ValueError:
                raise UsageError("APS_USAGE_LOCK_WAIT must be a number of seconds") from None
        if self._lock_fd is not None:  # re-entrant within one object
            yield self
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._lock_holder()
                    os.close(fd)
                    raise LockedError(
                        f"data dir {self.location} is in use by another aps-usage run ({holder}); "
                        "wait for it to finish, or set APS_USAGE_LOCK_WAIT=SECONDS to queue behind it"
                    ) from None
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                                     "since": _now().isoformat(timespec="seconds")}).encode())
            self._lock_fd = fd
            shutil.rmtree(self.tmp_dir, ignore_errors=True)  # scratch of a run that died
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._sync_salt()
            self.ensure_tables()
            self.upgrade_row_hashes()
            yield self
            self._sync_salt()
        finally:
            self._lock_fd = None
            # scratch of this run's transactions, however it ended (a Ctrl-C can land between
            # a transaction creating its folder and the code that would remove it)
            for scratch in self.tmp_dir.glob("tx-*"):
                shutil.rmtree(scratch, ignore_errors=True)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _sync_salt(self) -> None:
        """On object storage the salt of --hash-personal-data lives at ``<url>/state/salt``:
        fetched into state/ before a run (personal.load_salt reads it there), and a salt made
        by this run stored there after it (the first machine's salt wins)."""
        if not self.remote:
            return
        local = self.state_dir / "salt"
        remote = lake.join(self.location, "state", "salt")
        if not local.exists():
            stored = lake.read_bytes(remote)
            if stored is not None:
                lake.write_bytes_if_absent(str(local), stored)
        elif not lake.write_bytes_if_absent(remote, local.read_bytes()):
            stored = lake.read_bytes(remote)
            if stored is not None and stored != local.read_bytes():
                raise UsageError(f"{remote}: another machine stored a different salt first; delete "
                                 f"{local} and run again (rows hashed by this run use the local one)")

    def _lock_holder(self) -> str:
        try:
            info = json.loads(self.lock_path.read_text() or "{}")
            return f"pid {info.get('pid')}, {info.get('purpose')}, since {info.get('since')}"
        except (OSError, json.JSONDecodeError):
            return "unknown holder"

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("DataDir: take dd.lock(...) before writing")

    @property
    def purpose(self) -> str:
        try:
            return json.loads(self.lock_path.read_text() or "{}").get("purpose", "")
        except (OSError, json.JSONDecodeError):
            return ""

    # ---- transactions ------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self._require_lock()
        tx = Transaction(self)
        try:
            yield tx
            tx.commit()
        finally:
            tx.close()


class Transaction:
    """Stages writes and state changes; each dataset's rows and state become visible in one
    Delta commit at :meth:`commit`, nothing before."""

    def __init__(self, dd: DataDir):
        self.dd = dd
        self.dir = Path(tempfile.mkdtemp(prefix="tx-", dir=dd.tmp_dir))
        self.extracted_at = _now()
        self._writes: dict[str, list[_Write]] = {}
        self._state_changes: dict[str, dict[str, Any]] = {}
        self._state_cache: dict[str, dict[str, Any]] = {}
        self._n = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self.rows_written: dict[str, int] = {}
        self.command = dd.purpose

    def write(
        self,
        dataset: str,
        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch] | str | os.PathLike[str],
        *,
        source: str,
        replace: Replace | None = None,
    ) -> int:
        """Stage rows for ``dataset``, split by month; returns how many were staged."""
        self.dd.table_uri(dataset)  # raises on an unknown dataset
        spec = DATASETS[dataset]

        def new_path() -> Path:
            self._n += 1
            return self.dir / f"{dataset}-{self._n:05d}.arrow"

        earlier = self._writes.get(dataset, [])
        if replace is not None and any(w.staged.dropped for w in earlier):
            raise UsageError(f"{dataset}: a replace after an append in one transaction: write the replace first")
        # An append drops the rows the table holds already while it stages (so a re-import
        # spools nothing), and writes its months' files; not after a replace of this
        # transaction, which may remove those rows.
        append = replace is None and all(w.replace is None for w in earlier)
        staged = stage(
            (_conform(batch, spec, source) for batch in _batches(data)), spec, source=source,
            extracted_at=self.extracted_at, new_path=new_path, known=self._known(dataset) if append else None,
            append=append, after_batch=lambda: crash_point("staging"),
        )
        self._writes.setdefault(dataset, []).append(_Write(staged, source, replace))
        return staged.rows

    def _known(self, dataset: str) -> Known | None:
        """The table's stored hashes as of now, month by month; None for an empty table."""
        dt = self.dd.table(dataset)
        if dt is None:
            return None
        files = _files_by_month(dt, DATASETS[dataset])
        if not files:
            return None
        partitioned = DATASETS[dataset].date_column is not None
        # a file without its row count (-1): the month is compared by the commit, not here
        rows = {m: -1 if any(c is None for c in f.values()) else sum(f.values()) for m, f in files.items()}
        stored = dt.to_pyarrow_dataset()

        def load(month: str) -> SeenHashes:
            where = pc.field(MONTH_COLUMN) == month if partitioned else None
            try:
                seen = _stored_hashes(stored, where)
            except (pa.ArrowInvalid, OSError, DeltaError) as err:  # a torn file: named in one line
                raise _unreadable_error(dt, err) from None
            release_memory()
            return seen

        return Known(dt.version(), load, rows, {m: frozenset(f) for m, f in files.items()})

    def set_state(self, dataset: str, key: str, value: Any) -> None:
        self._state_changes.setdefault(dataset, {})[key] = value

    def get_state(self, dataset: str, key: str, default: Any = None) -> Any:
        if key in self._state_changes.get(dataset, {}):
            return self._state_changes[dataset][key]
        if dataset not in self._state_cache:
            self._state_cache[dataset] = self.dd._table_state(dataset).get("state", {})
        return self._state_cache[dataset].get(key, default)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
        for writes in self._writes.values():
            for w in writes:
                w.staged.delete()
        shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self) -> None:
        """One Delta commit per dataset written or whose state changed (see the module doc)."""
        crash_point("before-commit")
        release_memory()  # the readers' buffers are not needed any more
        for dataset in [*self._writes, *(d for d in self._state_changes if d not in self._writes)]:
            try:
                self.rows_written[dataset] = self._commit_with_retries(dataset)
            except (pa.ArrowInvalid, *_duckdb_errors("InvalidInputException", "IOException"), OSError,
                    DeltaError) as err:
                if isinstance(err, CommitFailedError):
                    raise LockedError(f"{dataset}: other writers kept committing to this table at the same time "
                                      f"({COMMIT_ATTEMPTS} attempts); nothing of this run was written to it, run again "
                                      f"({str(err).splitlines()[0]})") from None
                if "KeyboardInterrupt" in str(err):  # Ctrl-C while delta-rs pulled from our reader
                    raise KeyboardInterrupt from None
                raise _unreadable_error(self.dd.table(dataset), err) from None
            except (*_duckdb_errors("InterruptException"), RuntimeError) as err:
                if isinstance(err, RuntimeError) and "interrupted" not in str(err).lower():
                    raise
                raise KeyboardInterrupt from None  # Ctrl-C inside a DuckDB query: "Interrupted.", exit 130
            crash_point("after-commit")

    def _commit_with_retries(self, dataset: str) -> int:
        """Commit the dataset's staged rows; when another writer (another machine: the local
        lock does not reach it) committed to the table meanwhile, Delta refuses this commit
        (every commit carries the same app transaction, see ``_commit_properties``), and it is
        made again from the table's new version: the month's hashes re-read, so a row the other
        writer added is not added twice."""
        retrying = Retrying(retry=retry_if_exception_type(CommitFailedError), stop=stop_after_attempt(COMMIT_ATTEMPTS),
                            wait=wait_random_exponential(multiplier=0.2, max=5.0), reraise=True)
        for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    log.info("%s: another writer committed first; committing again from its version (attempt %d)",
                             dataset, number)
                return self._commit_dataset(DATASETS[dataset], self._writes.get(dataset, []))
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit_dataset(self, spec: DatasetSpec, writes: list[_Write]) -> int:
        dd = self.dd
        dt = dd.table(spec.name)
        if dt is None:  # created under the lock; only a table deleted since is missing
            dd.ensure_tables()
            dt = dd.table(spec.name)
        version = dt.version()
        _check_dropped_rows_still_stored(spec, dt, writes)
        everything = any(w.replace is not None and w.replace.everything for w in writes)
        predicates = [p for w in writes if w.replace is not None and not w.replace.everything
                      for p in [self._replace_predicate(spec, w.replace, w.staged)] if p]
        predicate = " OR ".join(f"({p})" for p in predicates) if predicates else None

        registered = False

        def connection() -> duckdb.DuckDBPyConnection:
            """DuckDB with this table as ``existing``, for a replace's predicate only: an
            append reads the stored hashes with pyarrow, and never loads DuckDB."""
            nonlocal registered
            if self._con is None:
                self._con = dd.connect()
            if not registered and existing is not None:
                self._con.register("existing", existing)
                registered = True
            return self._con

        existing_schema = pa.schema(dt.schema().to_arrow())
        extras = {f.name for f in existing_schema} | {c for w in writes for c in w.staged.columns}
        extras -= set(spec.columns) | set(META_COLUMNS) | {MONTH_COLUMN}
        schema = table_schema(spec, extras)

        rows_before = _count(dt)
        # opened before the write: delta-rs cannot be called from inside its own reader
        existing = dt.to_pyarrow_dataset() if rows_before else None
        if everything:
            removed = rows_before
        elif predicate and existing is not None:
            removed = connection().execute(f"SELECT count(*) FROM existing WHERE coalesce(({predicate}), false)").fetchall()[0][0]
        else:
            removed = 0

        added: dict[str, int] = {}  # rows added per month

        def kept_hashes(month: str) -> SeenHashes:
            """Hashes of the month's rows that stay (so an incoming equal row is not added)."""
            if everything or not rows_before:
                return SeenHashes()
            if not predicate:  # pyarrow reads only that month's files, only that column
                return _stored_hashes(existing, pc.field(MONTH_COLUMN) == month if spec.date_column else None)
            where = [f"NOT coalesce(({predicate}), false)"]
            if spec.date_column:
                where.append(f"{MONTH_COLUMN} = {_sql_str(month)}")
            sql = f"SELECT _row_hash FROM existing WHERE {' AND '.join(where)}"
            return SeenHashes(_arrow(connection(), sql).column(0))

        def compared(month: str) -> bool:
            """Whether the table holds none of the month's staged rows: it was empty, or they
            were compared with its hashes at this version while staging."""
            if everything or not rows_before:
                return True
            return all(w.staged.known is not None and w.staged.known.version == version and month in w.staged.checked
                       for w in writes if month in w.staged.months)

        def staged_in(month: str) -> list:
            """The month's staged rows of each write that has some, in write order."""
            return [w.staged.months[month] for w in writes if month in w.staged.months]

        def month_tables(month: str) -> Iterator[pa.Table]:
            """The month's incoming rows not in the table yet (nor added by an earlier write of
            this commit; a write has no repeated row of its own, see staging.py)."""
            mine = staged_in(month)
            for staged in mine:  # its repeats found before the stored hashes are loaded: not both at once
                staged.keep  # noqa: B018 - a cached property, computed here
            seen = SeenHashes() if compared(month) else kept_hashes(month)
            for i, staged in enumerate(mine):
                new = staged.new_rows(seen)  # from the hashes alone: no new row, no rows read
                if not new.any():
                    continue
                added[month] = added.get(month, 0) + int(new.sum())
                if i + 1 < len(mine):  # a later write of the month must not add these again
                    seen.add_bits([staged.all_bits()[new]])
                yield from staged.tables(None if new.all() else new)  # all new: no filtering
            del seen
            release_memory()  # the month's hashes, before the next month's

        months = sorted({m for w in writes for m in w.staged.months})

        def batches() -> Iterator[pa.RecordBatch]:
            for month in months:
                for table in month_tables(month):
                    yield from _in_schema(table, schema, month if spec.date_column else None).to_batches()
                crash_point("mid-commit")

        previous = self.dd._table_state(spec.name, dt)
        info = {
            "state": {**previous.get("state", {}), **self._state_changes.get(spec.name, {})},
            "last_run": (previous.get("last_run") if not writes else {
                "at": self.extracted_at.isoformat(timespec="seconds"),
                "sources": sorted({w.source for w in writes})[:20],
                "rows_received": sum(w.staged.rows for w in writes),
            }),
            "command": self.command,
            "row_hash": ROW_HASH_VERSION,
        }
        info["rows_removed"] = removed
        properties = _commit_properties(dt, info)
        if not (everything or predicate) and schema.equals(existing_schema, check_metadata=False):
            # An append of known columns: each month's file written here (streamed, a row
            # group at a time) and committed with its add action. delta-rs's own writer holds
            # its partitioned input in memory (a 1M-row import peaked 190 MB higher).
            # Two months at a time (Parquet encoding releases the GIL: the other core idles
            # otherwise), unless a month's stored hashes must be read here: two months of those
            # at once took a 6M-row re-import from 355 to 447 MB peak (bench/bench_import.py).
            def month_file(month: str) -> AddAction | None:
                mine = staged_in(month)
                if len(mine) == 1 and mine[0].whole and compared(month) and mine[0].file.schema.equals(
                        _file_schema(schema)):  # written while staging: added as it is
                    added[month] = mine[0].file.rows
                    return self._add_month_file(spec, month, mine[0].file)
                return self._write_month_file(dt, spec, schema, month, month_tables(month))

            parallel = 2 if all(compared(m) for m in months) else 1
            with ThreadPoolExecutor(parallel, thread_name_prefix="aps-usage-month-file") as pool:
                actions = [a for a in pool.map(month_file, months) if a]
            crash_point("mid-commit")
            info["rows_added"] = sum(added.values())
            dt.create_write_transaction(
                actions, mode="append", schema=schema, partition_by=[MONTH_COLUMN] if spec.date_column else None,
                commit_properties=_commit_properties(dt, info))
            return rows_before + sum(added.values())
        # with a replace (or new columns): delta-rs's predicate overwrite / schema merge; it
        # counts the rows added into the commit's operationMetrics (history)
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        write_deltalake(
            dt, reader, mode="overwrite" if (everything or predicate) else "append",
            predicate=None if everything else predicate, schema_mode="merge",
            partition_by=[MONTH_COLUMN] if spec.date_column else None,
            commit_properties=properties,
        )
        return rows_before - removed + sum(added.values())

    def _write_month_file(self, dt: DeltaTable, spec: DatasetSpec, schema: pa.Schema, month: str,
                          tables: Iterator[pa.Table]) -> AddAction | None:
        """One Parquet data file of the month's rows (in row groups of ROW_GROUP_ROWS), its add
        action; None when no row is new. On object storage the file is written to local
        scratch, then uploaded."""
        name, rel = _data_file_name(spec, month)
        local = (self.dir / name) if self.dd.remote else Path(self.dd.table_uri(spec.name)) / rel
        file = MonthFile(local, _file_schema(schema), spec.date_column)
        try:
            file.write_all(tables)
        finally:
            file.close()
        if not file.rows:
            return None
        if self.dd.remote:
            lake.upload_file(local, lake.join(self.dd.table_uri(spec.name), rel))
        return _add_action(spec, month, rel, file)

    def _add_month_file(self, spec: DatasetSpec, month: str, file: MonthFile) -> AddAction | None:
        """The month's file written while staging, put in the table's folder (a hard link:
        a commit made again links it again) or uploaded; its add action."""
        if not file.rows:
            return None
        _, rel = _data_file_name(spec, month)
        if self.dd.remote:
            lake.upload_file(file.path, lake.join(self.dd.table_uri(spec.name), rel))
        else:
            target = Path(self.dd.table_uri(spec.name)) / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file.path, target)
            except OSError:  # scratch on another file system, or no hard links there
                shutil.copyfile(file.path, target)
        return _add_action(spec, month, rel, file)

    def rehash(self, name: str) -> int:
        """Rewrite the table with every ``_row_hash`` recomputed, month by month, in one
        overwrite commit that keeps the table's state; returns the rows rewritten."""
        spec = DATASETS[name]
        dt = self.dd.table(name)
        schema = pa.schema(dt.schema().to_arrow())
        stored = dt.to_pyarrow_dataset()
        months = sorted(_files_by_month(dt, spec)) or [""]
        hasher = RowHasher(spec)
        rows = 0

        def rehashed(month: str) -> Iterator[pa.Table]:
            nonlocal rows
            where = pc.field(MONTH_COLUMN) == month if spec.date_column else None
            for batch in stored.to_batches(filter=where, batch_size=64_000, batch_readahead=1, fragment_readahead=1):
                table = pa.Table.from_batches([batch])
                rows += table.num_rows
                yield table.set_column(table.schema.get_field_index("_row_hash"), "_row_hash", hasher.hex(table))

        added = [a for month in months for a in [self._write_month_file(dt, spec, schema, month, rehashed(month))] if a]
        crash_point("mid-commit")
        info = {**self.dd._table_state(name, dt), "command": f"upgrade row hashes to version {ROW_HASH_VERSION}",
                "rows_added": 0, "rows_removed": 0, "row_hash": ROW_HASH_VERSION}
        try:
            dt.create_write_transaction(added, mode="overwrite", schema=schema,
                                        partition_by=[MONTH_COLUMN] if spec.date_column else None,
                                        commit_properties=_commit_properties(dt, info))
        except CommitFailedError as err:
            raise LockedError(f"{name}: another writer committed while its row hashes were upgraded; run again "
                              f"({str(err).splitlines()[0]})") from None
        return rows

    def _replace_predicate(self, spec: DatasetSpec, r: Replace, staged: Staged) -> str:
        """The replace as SQL that DuckDB and delta-rs (DataFusion) both read."""
        conds = []
        if r.match:
            for col, value in r.match.items():
                if col not in spec.columns:
                    raise UsageError(f"replace: '{col}' is not a column of {spec.name}")
                if isinstance(value, (list, tuple, set)):
                    conds.append(f"{_ident(col)} IN ({', '.join(_sql_str(v) for v in value)})")
                else:
                    conds.append(f"{_ident(col)} = {_sql_str(value)}")
        if spec.date_column:
            if r.date_from:
                conds.append(f"{_ident(spec.date_column)} >= CAST({_sql_str(r.date_from.isoformat())} AS DATE)")
            if r.date_to:
                conds.append(f"{_ident(spec.date_column)} <= CAST({_sql_str(r.date_to.isoformat())} AS DATE)")
            # the same range on the partition column: delta-rs then opens only those months' files
            if r.date_from:
                conds.append(f"{MONTH_COLUMN} >= {_sql_str(r.date_from.strftime('%Y-%m'))}")
            if r.date_to:
                conds.append(f"{MONTH_COLUMN} <= {_sql_str(r.date_to.strftime('%Y-%m'))}")
        if r.snapshot:
            if not staged.rows:  # an empty snapshot replaces nothing
                return ""
            cols = [c for c in spec.snapshot_columns if c in staged.columns]
            if not cols:  # a snapshot file without the team column replaces everything
                return "true"
            for c in cols:
                values = staged.distinct(c)
                non_null = [v for v in values if v is not None]
                part = f"{_ident(c)} IN ({', '.join(_sql_str(v) for v in non_null)})" if non_null else "false"
                if None in values:
                    part = f"({part} OR {_ident(c)} IS NULL)"
                conds.append(part)
        return " AND ".join(conds) if conds else ""


def _stored_hashes(stored: Any, where: pc.Expression | None) -> SeenHashes:
    """The row hashes of a Delta table's pyarrow dataset (where ``where`` holds), read a row
    group at a time in one thread: a re-import of 12M rows peaked 408 MB reading them whole."""
    seen = SeenHashes()
    seen.add(b.column(0) for b in stored.to_batches(columns=["_row_hash"], filter=where, use_threads=False,
                                                    batch_readahead=1, fragment_readahead=1))
    return seen


def _files_by_month(dt: DeltaTable, spec: DatasetSpec) -> dict[str, dict[str, int | None]]:
    """The data files of the table's current version by month ("" when not partitioned):
    path -> its row count (None when the log has none)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    months = (actions.column(f"partition.{MONTH_COLUMN}").to_pylist() if spec.date_column and actions.num_rows
              else [""] * actions.num_rows)
    out: dict[str, dict[str, int | None]] = {}
    for month, path, count in zip(months, actions.column("path").to_pylist() if actions.num_rows else [],
                                  actions.column("num_records").to_pylist() if actions.num_rows else []):
        out.setdefault(month, {})[path] = count
    return out


def _check_dropped_rows_still_stored(spec: DatasetSpec, dt: DeltaTable, writes: list[_Write]) -> None:
    """Rows a write dropped while staging because the table held them: when another writer
    committed since (the commit is made again from its version), every data file of those
    months must still be there, or rows this run relied on may be gone."""
    stale = [w for w in writes if w.staged.dropped and w.staged.known.version != dt.version()]
    if not stale:
        return
    now = _files_by_month(dt, spec)
    for w in stale:
        for month in w.staged.dropped:
            if not w.staged.known.files.get(month, frozenset()) <= now.get(month, {}).keys():
                raise LockedError(f"{spec.name}: another writer removed or rewrote rows of "
                                  f"{month or 'the table'} while this run read its input; nothing of "
                                  "this run was written to it, run again")


def _unreadable_error(dt: DeltaTable | None, err: Exception) -> Exception:
    """One line naming the first file of the current version that is not readable Parquet
    (a torn copy, a disk error outside aps-usage); the original error if every file reads."""
    for uri in dt.file_uris() if dt is not None else []:
        if lake.is_remote(uri):
            break
        path = uri.removeprefix("file://")
        try:
            pq.read_metadata(path)
        except Exception:
            detail = str(err).splitlines()[0][:200]
            return UsageError(f"{path}: not a readable Parquet file ({detail}); restore an earlier version "
                              "with 'aps-usage restore', or extract or import that month again")
    return err


def _commit_properties(dt: DeltaTable, info: dict[str, Any]) -> CommitProperties:
    """The state in the commit's metadata, and the app transaction every aps-usage commit
    carries: delta-rs refuses a commit when one committed since the version it read carries
    the same app id (Delta's conflict check on ``txn`` actions). Without it, two appends of
    the same file by two machines are blind appends that never conflict, and each adds the
    rows the other added."""
    txn = DeltaTransaction(APP_ID, dt.version() + 1, int(time.time() * 1000))
    return CommitProperties(custom_metadata={STATE_KEY: json.dumps(info, default=str)}, app_transactions=[txn])


def _duckdb_errors(*names: str) -> tuple[type[BaseException], ...]:
    """DuckDB's exception classes ``names``, once DuckDB is loaded: before, it raised none."""
    module = sys.modules.get("duckdb")
    return tuple(getattr(module, n) for n in names) if module is not None else ()


def _each_table(check: Callable[[str], Any]) -> list[Any]:
    """``check(name)`` of every dataset, in order, four at a time: each opens a table, mostly
    waiting on the store with the GIL released (deltalake), and this runs on every lock. The
    nine tables of a fresh local data dir were created in 0.08 s one after another and in
    0.03-0.04 s four at a time; an existing data dir's were opened in 0.035 s and 0.02 s. On
    object storage each table is a few round trips."""
    with ThreadPoolExecutor(4, thread_name_prefix="aps-usage-table") as pool:
        return list(pool.map(check, DATASETS))


def _count(dt: DeltaTable) -> int:
    """Rows of the table's current version (from the log: no data file is read)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The query's result as an Arrow table, across DuckDB versions (2.0 renamed the method)."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()



def _in_schema(table: pa.Table, schema: pa.Schema, month: str | None) -> pa.Table:
    """``table`` with the table's columns in order: NULL where it has none, the month added,
    text plain (for delta-rs's writer)."""
    n = table.num_rows
    names = set(table.column_names)
    columns = []
    for f in schema:
        if f.name == MONTH_COLUMN:
            columns.append(pa.repeat(pa.scalar(month, pa.string()), n))
        elif f.name in names:
            column = table.column(f.name)
            columns.append(column if column.type == f.type else column.cast(f.type))
        else:
            columns.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _file_schema(schema: pa.Schema) -> pa.Schema:
    """The columns of a month's Parquet file (see ``staging.file_schema``): the table's, the
    partition column left out."""
    return file_schema(pa.schema([f for f in schema if f.name != MONTH_COLUMN]))


def _data_file_name(spec: DatasetSpec, month: str) -> tuple[str, str]:
    """A new data file's name, and its path in the table (in the month's partition)."""
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    return name, f"{MONTH_COLUMN}={month}/{name}" if spec.date_column else name


def _add_action(spec: DatasetSpec, month: str, rel: str, file: MonthFile) -> AddAction:
    stats: dict[str, Any] = {"numRecords": file.rows}
    if file.low is not None:
        stats["minValues"] = {spec.date_column: file.low.isoformat()}
        stats["maxValues"] = {spec.date_column: file.high.isoformat()}
    return AddAction(rel, file.path.stat().st_size, {MONTH_COLUMN: month} if spec.date_column else {},
                     int(time.time() * 1000), True, json.dumps(stats))


def _batches(data: Any) -> Iterator[pa.RecordBatch | pa.Table]:
    if isinstance(data, pa.Table):
        if data.num_rows == 0:
            yield data
        else:
            yield from data.to_batches(max_chunksize=256_000)
    elif isinstance(data, pa.RecordBatchReader):
        yield from data
    elif isinstance(data, (str, os.PathLike)):
        f = pq.ParquetFile(data)
        yield from f.iter_batches(batch_size=256_000)
    else:
        yield from data
