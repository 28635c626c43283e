"""Import hand-downloaded files into the raw dataset: all of them in one transaction or none.

Where each kind goes and what it replaces: see ``kinds.py``. The user metadata is replaced
whole, so every metadata file of one import is checked together: a key value (e-mail
compared trimmed and case-insensitively, user id, user name, hashed id) that appears on two
rows is an error naming the value and both rows, since a join on it would double users.

A file with a header and no rows imports 0 rows (with a warning). For the metadata, whose
import replaces the dataset, that empties it: that is what the file says.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..config import Settings
from ..dataset import DataDir, Replace
from ..errors import InputError
from ..logs import log, progress
from ..personal import load_salt
from ..staging import rechunked, release_memory, use_lean_memory_pool
from .convert import NotThisKind, Prepared, prepare
from .kinds import METADATA_KEYS
from .readers import CSV_BATCH_ROWS, EmptyFile
from .sources import InputEntry, iter_files


@dataclass
class ImportedFile:
    """One table read from a file (or a ZIP member, or an XLSX sheet)."""

    kind: str
    dataset: str
    table: pa.Table
    source: str
    rows: list[int] = field(default_factory=list, repr=False)  # each row's number in its file


@dataclass
class FileResult:
    source: str
    kind: str
    dataset: str
    rows: int


@dataclass
class ImportReport:
    files: list[FileResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (entry, why)
    dataset_rows: dict[str, int] = field(default_factory=dict)  # rows in each dataset after the import

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": [f.__dict__ for f in self.files],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "dataset_rows": self.dataset_rows,
        }


def _open_entries(
    paths: Iterable[str | os.PathLike[str]], kind: str | None, salt: bytes | None,
    skipped: list[tuple[str, str]], name: str | None = None,
) -> Iterator[tuple[InputEntry, Prepared]]:
    """Each importable table, open while the caller reads it. Entries of folders, archives
    and workbooks that are empty or not a known kind are skipped with a warning."""
    for entry in iter_files(paths, name=name, skipped=skipped):
        with ExitStack() as stack:
            try:
                raw = stack.enter_context(entry.opener())
                prepared = prepare(raw, kind, salt=salt)
            except (EmptyFile, NotThisKind) as err:
                if not entry.optional:
                    raise
                reason = str(err).removeprefix(f"{entry.name}: ")
                log.warning("%s: skipped: %s", entry.name, reason)
                skipped.append((entry.name, reason))
                continue
            yield entry, prepared


def read_tables(path: str | os.PathLike[str], kind: str | None = None, *,
                name: str | None = None) -> list[ImportedFile]:
    """Every table in ``path`` (a file, folder, ZIP or workbook), read whole into memory."""
    out, skipped = [], []
    for entry, prepared in _open_entries([path], kind, None, skipped, name=name):
        table, rows = prepared.read_all()
        out.append(ImportedFile(prepared.kind.name, prepared.dataset, table, entry.name, rows))
    if not out:
        why = "; ".join(f"{s}: {r}" for s, r in skipped) or "no tables found"
        raise InputError(f"{name or os.fspath(path)}: nothing to import ({why})")
    return out


def read_table(path: str | os.PathLike[str], kind: str | None = None, *,
               name: str | None = None) -> ImportedFile:
    """The one table in ``path`` (tables of one kind in a ZIP/workbook are concatenated)."""
    tables = read_tables(path, kind, name=name)
    if len(tables) == 1:
        return tables[0]
    kinds = {t.kind for t in tables}
    if len(kinds) > 1:
        found = ", ".join(f"{t.source} ({t.kind})" for t in tables)
        raise InputError(f"{name or os.fspath(path)}: holds tables of several kinds ({found}); use read_tables()")
    table = pa.concat_tables([t.table for t in tables], promote_options="permissive")
    rows = [r for t in tables for r in t.rows]
    return ImportedFile(tables[0].kind, tables[0].dataset, table, name or os.path.basename(os.fspath(path)), rows)


def import_paths(settings: Settings, paths: Iterable[str | os.PathLike[str]], kind: str | None = None,
                 hash_personal_data: bool = False) -> ImportReport:
    """Import every table under ``paths``; one transaction under the data-dir lock."""
    paths = list(paths)
    use_lean_memory_pool()  # before the readers allocate their first buffers
    report = ImportReport()
    data_dir = DataDir(settings.data_dir)
    with data_dir.lock("import"):
        salt = load_salt(data_dir.state_dir) if hash_personal_data else None
        with data_dir.transaction() as tx:
            metadata: list[ImportedFile] = []
            for entry, prepared in _open_entries(paths, kind, salt, report.skipped):
                if prepared.kind.name == "metadata":
                    table, rows = prepared.read_all()
                    metadata.append(ImportedFile("metadata", prepared.dataset, table, entry.name, rows))
                    report.files.append(FileResult(entry.name, "metadata", prepared.dataset, table.num_rows))
                    continue
                rows = _stream(tx, entry, prepared, settings.quiet)
                if rows == 0:
                    log.warning("%s: header only, 0 rows", entry.name)
                report.files.append(FileResult(entry.name, prepared.kind.name, prepared.dataset, rows))
            if metadata:
                _write_metadata(tx, metadata)
            release_memory()  # before the commit's merge needs its own
            if not report.files:
                named = ", ".join(os.fspath(p) for p in paths)
                why = "; ".join(f"{s}: {r}" for s, r in report.skipped) or f"no tables found in {named}"
                raise InputError(f"nothing to import ({why})")
        report.dataset_rows = dict(tx.rows_written)
    return report


def _stream(tx, entry: InputEntry, prepared: Prepared, quiet: bool) -> int:
    size = prepared.raw.size
    description = f"import {entry.name}"
    with progress(description, total=size, quiet=quiet) as task:
        done = [0]

        def advance(raw) -> None:
            if size:
                task.advance(raw.position - done[0])
                done[0] = raw.position
            else:
                task.advance(raw.num_rows)

        batches = prepared.record_batches(on_batch=advance)
        return tx.write(prepared.dataset, rechunked(batches, STAGE_ROWS), source=entry.name, replace=prepared.kind.replace())


STAGE_ROWS = CSV_BATCH_ROWS  # rows per table handed to the writer (a CSV batch whole): hashed while the next one is read


def check_unique_keys(files: list[ImportedFile]) -> None:
    """No metadata key value twice (e-mail and user name compared trimmed, case-insensitive)."""
    for key in METADATA_KEYS:
        seen: dict[str, tuple[str, int]] = {}
        for f in files:
            if key not in f.table.column_names:
                continue
            column = f.table.column(key)
            if key in ("email", "user_name"):
                column = pc.utf8_lower(column)
            for value, row in zip(column.to_pylist(), f.rows):
                if value is None:
                    continue
                if value in seen:
                    first_source, first_row = seen[value]
                    where = (f"rows {first_row} and {row}" if first_source == f.source
                             else f"{first_source} row {first_row} and {f.source} row {row}")
                    raise InputError(f"{f.source}: duplicate {key} {value!r} in {where}; "
                                     "each user may appear once in the metadata")
                seen[value] = (f.source, row)


def _write_metadata(tx, files: list[ImportedFile]) -> None:
    check_unique_keys(files)
    tables = []
    for f in files:
        sources = pa.array([f.source] * f.table.num_rows, pa.string())
        tables.append(f.table.append_column("_source", sources))
    table = pa.concat_tables(tables, promote_options="permissive")
    tx.write("user_metadata", table, source=", ".join(f.source for f in files), replace=Replace(everything=True))
