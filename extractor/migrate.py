"""Converting a data dir written before the raw datasets were Delta tables.

The old layout (``raw/<dataset>/month=YYYY-MM/part.parquet`` or ``raw/<dataset>/part.parquet``,
``raw/<dataset>/schema.parquet``, ``state/state.json``) is read row for row into each
dataset's new Delta table, in one commit per dataset carrying that dataset's old state, then
the old files are deleted. A crash in between is harmless: a dataset whose table exists is
not converted again, only its old files removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UsageError
from .logs import log
from .schemas import DATASETS

if TYPE_CHECKING:
    from .dataset import DataDir

OLD_STATE = Path("state") / "state.json"


def old_files(dd: DataDir, name: str) -> list[Path]:
    folder = dd.raw_dir / name
    return sorted([*folder.glob("month=*/part.parquet"), *folder.glob("part.parquet")])


def has_old_layout(dd: DataDir) -> bool:
    return (dd.root / OLD_STATE).exists() or any(
        (dd.raw_dir / name / "schema.parquet").exists() or old_files(dd, name) for name in DATASETS)


def _old_batches(files: list[Path], spec, schema: pa.Schema):
    """The old files' rows in the new table's schema, 64k rows at a time."""
    from .dataset import _in_schema

    for f in files:
        month = f.parent.name.removeprefix("month=") if spec.date_column else None
        for batch in pq.ParquetFile(f).iter_batches(batch_size=64_000):
            yield from _in_schema(pa.Table.from_batches([batch]), schema, month).to_batches()


def migrate_old_layout(dd: DataDir) -> dict[str, int]:
    """Convert every dataset still in the old layout; returns rows converted per dataset."""
    if dd.remote or not has_old_layout(dd):
        return {}
    from deltalake import CommitProperties, write_deltalake

    from .dataset import MONTH_COLUMN, STATE_KEY, table_schema

    state_path = dd.root / OLD_STATE
    try:
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
    except json.JSONDecodeError as err:
        raise UsageError(f"{state_path}: state file is not valid JSON ({err}); cannot convert the data dir") from None
    converted = {}
    for name, spec in DATASETS.items():
        files = old_files(dd, name)
        if dd.table(name) is None:
            extras = {n for f in files for n in pq.read_schema(f).names} - set(table_schema(spec).names)
            schema = table_schema(spec, extras)

            rows = sum(pq.read_metadata(f).num_rows for f in files)
            info = {"state": state.get("datasets", {}).get(name, {}), "last_run": state.get("last_run", {}).get(name),
                    "command": "migrate", "rows_removed": 0}
            write_deltalake(dd.table_uri(name), pa.RecordBatchReader.from_batches(schema, _old_batches(files, spec, schema)),
                            mode="append", partition_by=[MONTH_COLUMN] if spec.date_column else None,
                            commit_properties=CommitProperties(custom_metadata={STATE_KEY: json.dumps(info, default=str)}))
            converted[name] = rows
            log.info("converted %s to a Delta table (%d rows)", name, rows)
        for f in files:
            f.unlink()
            if f.parent != dd.raw_dir / name:
                try:
                    f.parent.rmdir()
                except OSError:
                    pass
        (dd.raw_dir / name / "schema.parquet").unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    return converted
