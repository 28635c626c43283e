"""API answers -> Arrow tables: typed conversion of JSON rows, and export files fetched from
pre-signed URLs into ``<data-dir>/.tmp`` and read by the importer (which sniffs CSV, gzip,
ZIP or XLSX from the bytes)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ApiError, InputError
from .schemas import DatasetSpec


def _to_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float)):  # epoch seconds or milliseconds
        seconds = value / 1000 if value > 1e11 else value
        return datetime.utcfromtimestamp(seconds).date()
    return date.fromisoformat(str(value).strip()[:10])


def _to_int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return int(value)
    return int(float(value))


def _to_float(value: Any) -> float | None:
    if value in (None, ""):
        return None
    return float(value)


def _to_bool(value: Any) -> bool | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y")
    return bool(value)


def _to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _converter(dtype: pa.DataType):
    if pa.types.is_date(dtype):
        return _to_date
    if pa.types.is_integer(dtype):
        return _to_int
    if pa.types.is_floating(dtype):
        return _to_float
    if pa.types.is_boolean(dtype):
        return _to_bool
    return _to_str


def _fast_column(values: list, dtype: pa.DataType) -> pa.Array | None:
    """Columnar conversion in Arrow; None when the values need the per-value path."""
    import pyarrow.compute as pc

    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return None
    if arr.type == dtype:
        return arr
    if pa.types.is_null(arr.type):
        return pa.nulls(len(values), dtype)
    if pa.types.is_boolean(arr.type) or pa.types.is_floating(arr.type) and pa.types.is_string(dtype):
        return None  # 1.0 -> "1" and True -> "true" follow the per-value rules
    try:
        if pa.types.is_date(dtype):
            if not pa.types.is_string(arr.type):
                return None
            return pc.utf8_slice_codeunits(arr, 0, 10).cast(pa.date32())  # 2026-01-18[T00:00:00Z]
        return arr.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def typed_columns(columns: dict[str, list], spec: DatasetSpec, where: str) -> pa.Table:
    """Columns with canonical names -> a table typed per ``spec`` (unknown columns kept as
    strings). A value that does not convert raises ApiError naming ``where``, row and field."""
    arrays, fields = [], []
    for name, values in columns.items():
        dtype = spec.columns.get(name, pa.string())
        arr = _fast_column(values, dtype)
        if arr is None:
            convert = _converter(dtype)
            converted = []
            for i, value in enumerate(values):
                try:
                    converted.append(convert(value))
                except (TypeError, ValueError):
                    raise ApiError(f"{where}: row {i + 1}, field '{name}': unexpected value {value!r}") from None
            arr = pa.array(converted, dtype)
        arrays.append(arr)
        fields.append(pa.field(name, dtype))
    if not fields:
        return pa.schema([]).empty_table()
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def typed_table(records: Iterable[dict[str, Any]], spec: DatasetSpec, where: str) -> pa.Table:
    """Records (dicts with canonical keys) -> a typed table; see :func:`typed_columns`."""
    records = list(records)
    names: list[str] = list(dict.fromkeys(k for r in records for k in r))
    return typed_columns({n: [r.get(n) for r in records] for n in names}, spec, where)


def empty_table(spec: DatasetSpec) -> pa.Table:
    return spec.schema.empty_table()


def filter_dates(table: pa.Table, column: str, start: date, end: date) -> pa.Table:
    """Keep rows whose ``column`` is within [start, end]: what the replace covers, no more."""
    if table.num_rows == 0 or column not in table.column_names:
        return table
    import pyarrow.compute as pc

    col = table.column(column)
    if not pa.types.is_date(col.type):
        col = pc.cast(pc.utf8_slice_codeunits(col.cast(pa.string()), 0, 10), pa.date32())
        table = table.set_column(table.column_names.index(column), pa.field(column, pa.date32()), col)
    mask = pc.and_(pc.greater_equal(col, pa.scalar(start, pa.date32())), pc.less_equal(col, pa.scalar(end, pa.date32())))
    return table.filter(mask)


@contextmanager
def scratch_dir(data_dir: Path) -> Iterator[Path]:
    """A private folder under ``<data-dir>/.tmp`` for downloads, removed afterwards."""
    path = Path(data_dir) / ".tmp" / f"dl-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def set_text_column(table: pa.Table, name: str, value: Any) -> pa.Table:
    """``table`` with text column ``name`` (replaced or appended) holding ``value`` on every row."""
    column = pa.repeat(pa.scalar(value, pa.string()), table.num_rows)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), pa.field(name, pa.string()), column)
    return table.append_column(pa.field(name, pa.string()), column)


#: rows per table handed to the dataset writer (fewer, larger row groups cost less memory)
STREAM_ROWS = 100_000


def stream_export_file(path: Path, kind: str, what: str, rows: int = STREAM_ROWS) -> Iterator[pa.Table]:
    """A downloaded export read batch by batch by the importer (bounded memory), as tables of
    about ``rows`` rows; a file that does not read as ``kind`` raises ApiError naming ``what``."""
    from .importing import iter_files
    from .importing.convert import prepare
    from .staging import rechunked

    try:
        for entry in iter_files([path], name=what):
            with entry.opener() as raw:
                prepared = prepare(raw, kind)
                if prepared.kind.name != kind:
                    raise ApiError(f"{what}: the file reads as {prepared.kind.name}, not {kind}")
                empty = True
                for table in rechunked(prepared.record_batches(), rows):
                    empty = False
                    yield table
                if empty:  # a header-only file still says which columns it has
                    yield pa.Table.from_batches([], schema=prepared.schema())
    except InputError as err:
        raise ApiError(f"{what}: downloaded file cannot be read: {err}") from None


def read_export_file(path: Path, kind: str | None, what: str):
    """Parse a downloaded export with the importer; returns its ImportedFile."""
    from .importing import read_table

    try:
        return read_table(path, kind=kind)
    except InputError as err:
        raise ApiError(f"{what}: downloaded file cannot be read: {err}") from None


def select_by_id(items: list[dict[str, Any]], wanted: Iterable[str] | None, key: str, option: str,
                 noun: str) -> list[dict[str, Any]]:
    """The items the user asked for (all when none), in the order asked; an id the credentials
    cannot see is a one-line error naming the option and the ids that exist."""
    if not wanted:
        return items
    by_id = {str(item[key]): item for item in items}
    chosen = []
    for item_id in wanted:
        if str(item_id) not in by_id:
            known = ", ".join(sorted(by_id)) or "none"
            raise InputError(f"{option} {item_id}: not a {noun} these credentials can see (known: {known})")
        chosen.append(by_id[str(item_id)])
    return chosen
