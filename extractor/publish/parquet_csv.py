"""One Parquet and one CSV file per mart in ``<data-dir>/marts/``.

The CSV is for Excel users: UTF-8 with a byte-order mark (so Excel does not guess a code
page), ISO dates, RFC 4180 quoting with CRLF line ends, and text cells that Excel would run
as a formula (starting with ``= + - @``, tab or carriage return) prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .files import atomic_path
from .warehouse import read_mart_batches

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """Stop Excel/LibreOffice from evaluating a text cell (CSV formula injection)."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralise_formula(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # written in UTC; docs/bi.md says so
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        return repr(value)
    if isinstance(value, (int, decimal.Decimal)):  # a negative number is data, not a formula
        return str(value)
    return neutralise_formula(str(value))


def write_csv(batches: pa.RecordBatchReader, dest: Path) -> int:
    """Write the batches as an Excel-safe CSV, atomically; returns the row count."""
    rows = 0
    with atomic_path(dest) as tmp:
        with open(tmp, "w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow([neutralise_formula(name) for name in batches.schema.names])
            for batch in batches:
                columns = [col.to_pylist() for col in batch.columns]
                for row in zip(*columns):
                    writer.writerow([_csv_cell(v) for v in row])
                rows += batch.num_rows
    return rows


def write_parquet(batches: pa.RecordBatchReader, dest: Path) -> int:
    rows = 0
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, batches.schema, compression="snappy") as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def publish_mart_files(con: duckdb.DuckDBPyConnection, mart: str, marts_dir: Path, formats: set[str]) -> dict[str, Path]:
    """Write ``<mart>.parquet`` and/or ``<mart>.csv``; returns the paths written."""
    written: dict[str, Path] = {}
    if "parquet" in formats:
        dest = marts_dir / f"{mart}.parquet"
        write_parquet(read_mart_batches(con, mart), dest)
        written["parquet"] = dest
    if "csv" in formats:
        dest = marts_dir / f"{mart}.csv"
        write_csv(read_mart_batches(con, mart), dest)
        written["csv"] = dest
    return written
