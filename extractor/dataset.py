"""The raw Parquet dataset under ``<data-dir>/raw``: one writer at a time, atomic commits.

Layout (see ``docs/design.md``)::

    <data-dir>/raw/<dataset>/schema.parquet          zero rows, every listed column typed
    <data-dir>/raw/<dataset>/month=YYYY-MM/part.parquet   datasets with a date column
    <data-dir>/raw/<dataset>/part.parquet             the others
    <data-dir>/state/state.json                       what was extracted up to when
    <data-dir>/.tmp/<txid>/                           a transaction in progress (never read)

A transaction stages incoming rows as Parquet, merges them with the affected partitions in
DuckDB (replace predicates, then de-duplication by ``_row_hash``), writes the new partition
files under ``.tmp/<txid>/``, and then writes ``COMMIT.json``: the commit point. Only then are
the files renamed into place and the state replaced. Whoever takes the lock next finishes a
committed transaction (roll forward) or deletes an uncommitted one (roll back), so readers
see either the previous dataset or the new one per file, and the state never runs ahead of
the files.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import InputError, LockedError, UsageError
from .logs import log
from .rowhash import sql_ident as _ident, sql_str as _sql_str
from .schemas import DATASETS, META_COLUMNS, DatasetSpec
from .staging import layout_schema, stage

try:  # POSIX advisory locks; released by the kernel when a process dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PART_FILE = "part.parquet"
SCHEMA_FILE = "schema.parquet"
# DuckDB's share of the memory of a merge; it spills to .tmp beyond this.
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
    files: dict[str, list[Path]]  # month ("YYYY-MM", or "" when not partitioned) -> staged files
    source: str
    replace: Replace | None
    rows: int
    deduped: bool  # no two staged rows share a row hash (see staging.py)


def crash_point(name: str) -> None:
    """Fault injection for the crash-safety tests: die here, as SIGKILL would, when asked."""
    if os.environ.get("APS_USAGE_CRASH_AT") == name:
        os.kill(os.getpid(), 9)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def full_schema(spec: DatasetSpec) -> pa.Schema:
    return pa.schema(list(spec.schema) + [pa.field(k, v) for k, v in META_COLUMNS.items()])


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
                import pyarrow.compute as pc

                naive = column.cast(pa.timestamp(target.unit))
                return pc.assume_timezone(naive, "UTC").cast(target)
        if pa.types.is_timestamp(column.type) and pa.types.is_date(target):
            return column.cast(pa.date32())
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        detail = str(err).split("\n")[0]
        raise InputError(f"{source}: column '{name}': cannot read as {target}: {detail}") from None


class DataDir:
    """The data directory: raw dataset, state, lock and transactions."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()
        self.raw_dir = self.root / "raw"
        self.state_dir = self.root / "state"
        self.tmp_dir = self.root / ".tmp"
        self.state_path = self.state_dir / "state.json"
        self.lock_path = self.state_dir / "lock"
        for d in (self.raw_dir, self.state_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None

    # ---- paths and reading -------------------------------------------------------------
    def dataset_dir(self, name: str) -> Path:
        if name not in DATASETS:
            raise UsageError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
        return self.raw_dir / name

    def data_files(self, name: str) -> list[Path]:
        """The Parquet files holding rows of ``name`` (not the empty schema file)."""
        d = self.dataset_dir(name)
        if DATASETS[name].date_column:
            return sorted(d.glob(f"month=*/{PART_FILE}"))
        f = d / PART_FILE
        return [f] if f.exists() else []

    def ensure_schema_files(self) -> None:
        """Give every dataset its zero-row typed file, so readers never miss a dataset or column."""
        for name, spec in DATASETS.items():
            path = self.dataset_dir(name) / SCHEMA_FILE
            schema = full_schema(spec)
            if path.exists():
                try:
                    if pq.read_schema(path).equals(schema):
                        continue
                except Exception:  # unreadable: rewrite it
                    pass
            sink = pa.BufferOutputStream()
            pq.write_table(schema.empty_table(), sink)
            atomic_write_bytes(path, sink.getvalue().to_pybytes())

    def read_state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {"datasets": {}, "last_run": {}}
        except json.JSONDecodeError as err:
            raise UsageError(f"{self.state_path}: state file is not valid JSON ({err})") from None

    def connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY_LIMIT, "threads": threads or max(1, os.cpu_count() or 1)})
        con.execute("SET TimeZone='UTC'")
        con.execute("SET preserve_insertion_order=false")
        con.execute(f"SET temp_directory={_sql_str(str(self.tmp_dir / 'duckdb-spill'))}")
        return con

    def read(self, name: str) -> pa.Table:
        """The whole dataset as an Arrow table (for tests and small datasets)."""
        files = [str(self.dataset_dir(name) / SCHEMA_FILE)] + [str(p) for p in self.data_files(name)]
        con = self.connect()
        try:
            return arrow_table(
                con, f"SELECT * FROM read_parquet({files!r}, union_by_name=true, hive_partitioning=false)"
            )
        finally:
            con.close()

    def stats(self) -> list[dict[str, Any]]:
        """Per dataset: rows, date range, newest extraction and last successful run."""
        state = self.read_state()
        out = []
        con = self.connect()
        try:
            for name, spec in DATASETS.items():
                files = [str(p) for p in self.data_files(name)]
                row: dict[str, Any] = {"dataset": name, "rows": 0, "min_date": None, "max_date": None,
                                       "newest_extracted_at": None, "files": len(files)}
                if files:
                    date_expr = (f"min({_ident(spec.date_column)}), max({_ident(spec.date_column)})"
                                 if spec.date_column else "NULL, NULL")
                    try:
                        r = con.execute(
                            f"SELECT count(*), {date_expr}, max(_extracted_at) FROM read_parquet({files!r}, "
                            "union_by_name=true, hive_partitioning=false)"
                        ).fetchone()
                    except (duckdb.InvalidInputException, duckdb.IOException) as err:
                        raise _unreadable_error(files, err) from None
                    row.update(rows=r[0], min_date=r[1], max_date=r[2], newest_extracted_at=r[3])
                row["last_run"] = state.get("last_run", {}).get(name)
                out.append(row)
        finally:
            con.close()
        return out

    # ---- locking and recovery ----------------------------------------------------------
    @contextmanager
    def lock(self, purpose: str, wait: float | None = None) -> Iterator["DataDir"]:
        """Hold the data dir for one writer. Waits up to ``wait`` seconds (default: env
        APS_USAGE_LOCK_WAIT, else 0), then LockedError."""
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
                        f"data dir {self.root} is in use by another aps-usage run ({holder}); "
                        "wait for it to finish, or set APS_USAGE_LOCK_WAIT=SECONDS to queue behind it"
                    ) from None
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                                     "since": _now().isoformat(timespec="seconds")}).encode())
            self._lock_fd = fd
            self.recover()
            self.ensure_schema_files()
            yield self
        finally:
            self._lock_fd = None
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _lock_holder(self) -> str:
        try:
            info = json.loads(self.lock_path.read_text() or "{}")
            return f"pid {info.get('pid')}, {info.get('purpose')}, since {info.get('since')}"
        except (OSError, json.JSONDecodeError):
            return "unknown holder"

    def recover(self) -> None:
        """Finish committed transactions left by a crash, delete uncommitted ones."""
        self._require_lock()
        for txdir in sorted(self.tmp_dir.glob("tx-*")):
            commit = txdir / "COMMIT.json"
            if commit.exists():
                try:
                    plan = json.loads(commit.read_text())
                except json.JSONDecodeError:  # torn before the rename made it the commit point
                    plan = None
                if plan is not None:
                    log.info("finishing an interrupted commit (%s)", txdir.name)
                    self._apply(plan)
            shutil.rmtree(txdir, ignore_errors=True)
        shutil.rmtree(self.tmp_dir / "duckdb-spill", ignore_errors=True)

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("DataDir: take dd.lock(...) before writing")

    def _apply(self, plan: dict[str, Any]) -> None:
        """Idempotent: every step can be redone after a crash in the middle of it."""
        touched: set[Path] = set()
        for src, dst in plan["renames"]:
            s, d = self.root / src, self.root / dst
            if s.exists():
                d.parent.mkdir(parents=True, exist_ok=True)
                os.replace(s, d)
                touched.add(d.parent)
                crash_point("mid-apply")
        for rel in plan["deletes"]:
            p = self.root / rel
            if p.exists():
                p.unlink()
                touched.add(p.parent)
                try:
                    p.parent.rmdir()  # an emptied month folder
                except OSError:
                    pass
        for d in touched:
            _fsync_dir(d)
        atomic_write_bytes(self.state_path, json.dumps(plan["state"], indent=2, default=str).encode())

    # ---- transactions ------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        self._require_lock()
        tx = Transaction(self)
        try:
            yield tx
        except BaseException:
            tx.abort()
            raise
        try:
            tx.commit()
        except BaseException:
            if not (tx.dir / "COMMIT.json").exists():  # stopped before the commit point (e.g. Ctrl-C)
                tx.abort()
            raise


class Transaction:
    """Stages writes and state changes; nothing is visible before :meth:`commit`."""

    def __init__(self, dd: DataDir):
        self.dd = dd
        self.txid = f"tx-{_now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.dir = dd.tmp_dir / self.txid
        (self.dir / "in").mkdir(parents=True)
        self.extracted_at = _now()
        self._writes: dict[str, list[_Write]] = {}
        self._state = dd.read_state()
        self._state.setdefault("datasets", {})
        self._state.setdefault("last_run", {})
        self._n = 0
        self._con: duckdb.DuckDBPyConnection | None = None  # one DuckDB for staging and merge
        self.rows_written: dict[str, int] = {}

    def write(
        self,
        dataset: str,
        data: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch] | str | os.PathLike[str],
        *,
        source: str,
        replace: Replace | None = None,
    ) -> int:
        """Stage rows for ``dataset``, split by month; returns how many were staged."""
        self.dd.dataset_dir(dataset)  # raises on an unknown dataset
        spec = DATASETS[dataset]

        def new_path() -> Path:
            self._n += 1
            return self.dir / "in" / f"{dataset}-{self._n:05d}.parquet"

        cursor = self._connection().cursor()
        try:
            staged = stage(
                (_conform(batch, spec, source) for batch in _batches(data)), spec, source=source,
                extracted_at=self.extracted_at, cursor=cursor, new_path=new_path,
                after_batch=lambda: crash_point("staging"),
            )
        finally:
            cursor.close()
        self._writes.setdefault(dataset, []).append(_Write(staged.files, source, replace, staged.rows, staged.deduped))
        return staged.rows

    def _connection(self) -> duckdb.DuckDBPyConnection:
        # one thread while staging (hashing beside the reader), every core for the merge
        if self._con is None:
            self._con = self.dd.connect(threads=1)
        return self._con

    def _close_connection(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def set_state(self, dataset: str, key: str, value: Any) -> None:
        self._state["datasets"].setdefault(dataset, {})[key] = value

    def get_state(self, dataset: str, key: str, default: Any = None) -> Any:
        return self._state["datasets"].get(dataset, {}).get(key, default)

    def abort(self) -> None:
        self._close_connection()
        shutil.rmtree(self.dir, ignore_errors=True)

    def commit(self) -> None:
        renames: list[tuple[str, str]] = []
        deletes: list[str] = []
        con = self._connection()
        con.execute(f"SET threads={max(1, os.cpu_count() or 1)}")
        try:
            for dataset, writes in self._writes.items():
                try:
                    r, d, n = self._merge(con, DATASETS[dataset], writes)
                except (duckdb.InterruptException, RuntimeError) as err:
                    if isinstance(err, RuntimeError) and "interrupted" not in str(err).lower():
                        raise
                    raise KeyboardInterrupt from None  # Ctrl-C inside a DuckDB query: "Interrupted.", exit 130
                except (pa.ArrowInvalid, duckdb.InvalidInputException, duckdb.IOException) as err:
                    raise _unreadable_error([str(p) for p in self.dd.data_files(dataset)], err) from None
                except duckdb.OutOfMemoryException as err:  # e.g. a file with a thousand extra columns
                    sources = ", ".join(sorted({w.source for w in writes}))[:300]
                    raise UsageError(
                        f"{sources}: merging into {dataset} ran out of memory (APS_USAGE_DUCKDB_MEMORY="
                        f"{DUCKDB_MEMORY_LIMIT}; raise it, or drop unneeded columns): {str(err).splitlines()[0]}"
                    ) from None
                renames += r
                deletes += d
                self.rows_written[dataset] = n
                self._state["last_run"][dataset] = {
                    "at": self.extracted_at.isoformat(timespec="seconds"),
                    "sources": sorted({w.source for w in writes})[:20],
                    "rows_received": sum(w.rows for w in writes),
                }
        except BaseException:
            self.abort()
            raise
        self._close_connection()
        plan = {"renames": renames, "deletes": deletes, "state": self._state}
        for src, _ in renames:
            _fsync_file(self.dd.root / src)
        crash_point("before-commit")
        # The commit point: a complete COMMIT.json (written whole, then renamed).
        atomic_write_bytes(self.dir / "COMMIT.json", json.dumps(plan, default=str).encode())
        crash_point("after-commit")
        self.dd._apply(plan)
        shutil.rmtree(self.dir, ignore_errors=True)

    # The merge of one dataset, one month at a time (memory stays bounded by a month):
    # the month's existing rows minus replaced ones, plus incoming rows, de-duplicated by
    # _row_hash (newest wins), written as the month's new file. A month with no rows to keep
    # and one de-duplicated staged file takes that file as it is.
    def _merge(self, con: duckdb.DuckDBPyConnection, spec: DatasetSpec, writes: list[_Write]):
        dd = self.dd
        ds_dir = dd.dataset_dir(spec.name)
        rel = lambda p: str(Path(p).relative_to(dd.root))  # noqa: E731
        staged_by_month: dict[str, list[tuple[_Write, list[str]]]] = {}
        for w in writes:
            for month, paths in w.files.items():
                staged_by_month.setdefault(month, []).append((w, [str(p) for p in paths]))
        all_staged = [f for w in writes for fs in w.files.values() for f in map(str, fs)]
        replaces = [w.replace for w in writes if w.replace is not None]
        everything = any(r.everything for r in replaces)
        predicates = [p for p in (self._replace_predicate(con, spec, r, all_staged) for r in replaces) if p]
        keep_where = " AND ".join(f"NOT coalesce(({p}), false)" for p in predicates) or "true"

        existing: dict[str, Path] = {}
        for p in dd.data_files(spec.name):
            existing[p.parent.name.removeprefix("month=") if spec.date_column else ""] = p
        months = set(staged_by_month)
        if everything:
            months |= set(existing)
        for r in replaces:
            if r.snapshot or (r.match and r.date_from is None and r.date_to is None):
                months |= set(existing)
            elif r.date_from or r.date_to:
                months |= {m for m in existing if _month_in(m, r.date_from, r.date_to)}

        schema_file = str(ds_dir / SCHEMA_FILE)
        renames: list[tuple[str, str]] = []
        deletes: list[str] = []
        total = 0
        for month in sorted(months):
            old = existing.get(month)
            target = ds_dir / (f"month={month}" if spec.date_column else "") / PART_FILE
            incoming = staged_by_month.get(month, [])
            staged = [f for _, files in incoming for f in files]
            if (old is None or everything) and len(incoming) == 1 and incoming[0][0].deduped and len(staged) == 1:
                # nothing to merge: the staged file is already the partition file (staging.py)
                renames.append((rel(staged[0]), rel(target)))
                total += _rows(Path(staged[0]))
                continue
            out = self.dir / "out" / spec.name / (month or "all") / PART_FILE
            out.parent.mkdir(parents=True, exist_ok=True)
            merged_old = None if everything else old
            written = _merge_month(con, spec, schema_file, merged_old, keep_where, staged, out)
            if written or not spec.date_column:
                renames.append((rel(out), rel(target)))
                total += written
            elif old is not None:
                deletes.append(rel(old))
        total += sum(_rows(p) for m, p in existing.items() if m not in months)
        return renames, deletes, total

    def _replace_predicate(self, con, spec: DatasetSpec, r: Replace, staged: list[str]) -> str:
        if r.everything:
            return "true"
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
                conds.append(f"{_ident(spec.date_column)} >= DATE {_sql_str(r.date_from.isoformat())}")
            if r.date_to:
                conds.append(f"{_ident(spec.date_column)} <= DATE {_sql_str(r.date_to.isoformat())}")
        if r.snapshot:
            if not staged:  # an empty snapshot replaces nothing
                return ""
            cols = [c for c in spec.snapshot_columns if c in _columns(staged)]
            if not cols:  # a snapshot file without the team column replaces everything
                return "true"
            for c in cols:
                values = [row[0] for row in con.execute(
                    f"SELECT DISTINCT CAST({_ident(c)} AS VARCHAR) FROM read_parquet({staged!r}, union_by_name=true)"
                ).fetchall()]
                non_null = [v for v in values if v is not None]
                part = f"{_ident(c)} IN ({', '.join(_sql_str(v) for v in non_null)})" if non_null else "false"
                if None in values:
                    part = f"({part} OR {_ident(c)} IS NULL)"
                conds.append(part)
        return " AND ".join(conds) if conds else ""


def _merge_month(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, schema_file: str, old: Path | None,
                 keep_where: str, staged: list[str], out: Path) -> int:
    """The month's kept existing rows plus the staged rows, de-duplicated by ``_row_hash``
    (newest wins), written to ``out``; returns the rows written."""
    union = f"SELECT * FROM read_parquet({[schema_file]!r})"
    if old is not None:
        union += (f" UNION ALL BY NAME (SELECT * FROM read_parquet({[str(old)]!r}, union_by_name=true, "
                  f"hive_partitioning=false) WHERE {keep_where})")
    if staged:
        union += (f" UNION ALL BY NAME (SELECT * FROM read_parquet({staged!r}, union_by_name=true, "
                  "hive_partitioning=false))")
    extras = (_columns(staged) | _columns([str(old)] if old else [])) - set(spec.columns) - set(META_COLUMNS)
    schema = layout_schema(spec, extras)
    columns = ", ".join(_ident(c) for c in schema.names)
    query = (f"SELECT {columns} FROM ({union}) QUALIFY row_number() OVER "
             "(PARTITION BY _row_hash ORDER BY _extracted_at DESC, _source) = 1")
    # Row groups bounded: DuckDB holds one per thread while writing, and at its default size
    # (122,880 rows) two of them and the window's buffers thrash under the memory limit.
    return con.execute(f"COPY ({query}) TO {_sql_str(str(out))} (FORMAT parquet, ROW_GROUP_SIZE 30000)").fetchone()[0]


def arrow_table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The query's result as an Arrow table, across DuckDB versions (2.0 renamed the method)."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


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


def _unreadable_error(files: list[str], err: Exception) -> Exception:
    """One line naming the first file that is not readable Parquet (a torn copy, a full disk
    outside aps-usage); the original error if every file reads."""
    for f in files:
        try:
            pq.read_metadata(f)
        except Exception:
            detail = str(err).splitlines()[0][:200]
            return UsageError(f"{f}: not a readable Parquet file ({detail}); move it away and extract or import "
                              "that month again")
    return err


def _columns(files: list[str]) -> set[str]:
    cols: set[str] = set()
    for f in files:
        cols |= set(pq.read_schema(f).names)
    return cols


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _month_in(month: str, date_from: date | None, date_to: date | None) -> bool:
    first = date.fromisoformat(month + "-01")
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    if date_from and nxt <= date_from:
        return False
    if date_to and first > date_to:
        return False
    return True
