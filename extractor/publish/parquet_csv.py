"""One Parquet and one CSV file per mart in ``<data-dir>/marts/``.

The CSV is for Excel users: UTF-8 with a byte-order mark (so Excel does not guess a code
page), ISO dates, UTC timestamps, RFC 4180 quoting with CRLF line ends, and text cells
that Excel would run as a formula (starting with ``= + - @``, tab or carriage return)
prefixed with ``'``. Numbers are never prefixed (a negative number is data).

DuckDB writes both files (``COPY``): the neutralising is done in SQL, so a large mart never
goes through Python row by row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from .files import atomic_path
from .warehouse import bi_select, quote_ident

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
UTF8_BOM = b"\xef\xbb\xbf"
_SQL_TRIGGERS = ", ".join(f"chr({ord(c)})" for c in FORMULA_TRIGGERS)


def neutralise_formula(text: str) -> str:
    """Stop Excel/LibreOffice from evaluating a text cell (CSV formula injection)."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _csv_expression(column: str, duck_type: str) -> str:
    col = quote_ident(column)
    alias = quote_ident(neutralise_formula(column))
    t = duck_type.upper()
    if t == "VARCHAR":
        return f"CASE WHEN left({col}, 1) IN ({_SQL_TRIGGERS}) THEN '''' || {col} ELSE {col} END AS {alias}"
    if t in ("DOUBLE", "FLOAT"):  # Excel has no NaN/Infinity: leave the cell empty
        return f"CASE WHEN isnan({col}) OR isinf({col}) THEN NULL ELSE {col} END AS {alias}"
    if t == "TIMESTAMP WITH TIME ZONE":  # the connection's TimeZone is UTC (open_warehouse)
        return f"{col}::TIMESTAMP AS {alias}"
    return f"{col} AS {alias}"


def csv_select(con: duckdb.DuckDBPyConnection, mart: str) -> str:
    """The mart as Excel-safe columns (on top of the BI-friendly types of :func:`bi_select`)."""
    inner = bi_select(con, mart)
    described = con.execute(f"DESCRIBE {inner}").fetchall()
    exprs = [_csv_expression(row[0], row[1]) for row in described]
    return f"SELECT {', '.join(exprs)} FROM ({inner}) AS m"


def write_csv(con: duckdb.DuckDBPyConnection, mart: str, dest: Path) -> int:
    """Write the mart as an Excel-safe CSV, atomically; returns the row count."""
    with atomic_path(dest) as tmp:
        body = tmp.with_name(tmp.name + ".body")
        try:
            rows = con.execute(
                f"COPY ({csv_select(con, mart)}) TO {_sql_path(body)} "
                "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NEW_LINE '\\r\\n', "
                "DATEFORMAT '%Y-%m-%d')"
            ).fetchone()[0]
            with open(tmp, "wb") as out, open(body, "rb") as src:
                out.write(UTF8_BOM)
                shutil.copyfileobj(src, out, length=1 << 20)
        finally:
            body.unlink(missing_ok=True)
    return int(rows)


def write_parquet(con: duckdb.DuckDBPyConnection, mart: str, dest: Path) -> int:
    """Write the mart as Parquet (snappy: every Power BI and Tableau version reads it), atomically."""
    with atomic_path(dest) as tmp:
        rows = con.execute(
            f"COPY ({bi_select(con, mart)}) TO {_sql_path(tmp)} (FORMAT parquet, COMPRESSION snappy)"
        ).fetchone()[0]
    return int(rows)


def publish_mart_files(con: duckdb.DuckDBPyConnection, mart: str, marts_dir: Path, formats: set[str]) -> dict[str, Path]:
    """Write ``<mart>.parquet`` and/or ``<mart>.csv``; returns the paths written."""
    written: dict[str, Path] = {}
    if "parquet" in formats:
        written["parquet"] = marts_dir / f"{mart}.parquet"
        write_parquet(con, mart, written["parquet"])
    if "csv" in formats:
        written["csv"] = marts_dir / f"{mart}.csv"
        write_csv(con, mart, written["csv"])
    return written
