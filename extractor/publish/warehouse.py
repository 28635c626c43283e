"""Read the marts out of ``<data-dir>/warehouse.duckdb`` in a shape every BI tool accepts.

Publishing is generic: every table or view in schema ``marts`` is published, so a new mart
needs no code here. Column types that Power BI, Tableau or Excel cannot take (128-bit
integers and decimals, lists, structs, intervals...) are converted in SQL, the same way for
every output format, so Parquet, CSV and Hyper always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ..errors import BuildError

MARTS_SCHEMA = "marts"

# DuckDB type prefixes converted to VARCHAR: nested or exotic types BI tools cannot import.
_AS_TEXT = ("STRUCT", "MAP", "UNION", "INTERVAL", "UUID", "BIT", "BLOB", "TIME WITH TIME ZONE", "ENUM", "JSON")

# Types Hyper (and several BI tools) lack, widened without loss.
_WIDER = {"FLOAT": "DOUBLE", "REAL": "DOUBLE", "FLOAT4": "DOUBLE", "TINYINT": "SMALLINT", "UTINYINT": "SMALLINT",
          "USMALLINT": "INTEGER", "UINTEGER": "BIGINT"}


@dataclass(frozen=True)
class Mart:
    name: str
    rows: int
    columns: tuple[str, ...]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    if not path.exists():
        raise BuildError(f"{path}: warehouse not found; run `aps-usage build` first")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise BuildError(f"{path}: cannot open the warehouse (is a build running?): {first_line(err)}") from err
    con.execute("SET TimeZone = 'UTC'")  # every output writes timestamps in UTC
    return con


def list_marts(con: duckdb.DuckDBPyConnection) -> list[Mart]:
    names = [
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
            "AND table_catalog = current_database() ORDER BY table_name",
            [MARTS_SCHEMA],
        ).fetchall()
    ]
    marts = []
    for name in names:
        rows = con.execute(f"SELECT count(*) FROM {mart_ref(name)}").fetchone()[0]
        columns = tuple(
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "AND table_catalog = current_database() ORDER BY ordinal_position",
                [MARTS_SCHEMA, name],
            ).fetchall()
        )
        marts.append(Mart(name=name, rows=int(rows), columns=columns))
    return marts


def _bi_expression(column: str, duck_type: str) -> str:
    col = quote_ident(column)
    t = duck_type.upper()
    if t.endswith("[]") or t.startswith(("LIST", "ARRAY")) or "[" in t:
        return f"array_to_string({col}::VARCHAR[], '; ') AS {col}"
    if t.startswith(_AS_TEXT):
        return f"{col}::VARCHAR AS {col}"
    if t in ("HUGEINT", "UHUGEINT", "UBIGINT"):
        # counts summed by dbt come out as HUGEINT; a value beyond BIGINT raises, never wraps
        return f"{col}::BIGINT AS {col}"
    if t.startswith("DECIMAL"):
        precision = int(t[t.index("(") + 1 : t.index(",")]) if "(" in t else 18
        if precision > 18:  # Hyper and many BI tools stop at 18 digits
            return f"{col}::DOUBLE AS {col}"
    if t in _WIDER:
        return f"{col}::{_WIDER[t]} AS {col}"
    if t in ("TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"):
        return f"{col}::TIMESTAMP AS {col}"
    return col


def first_line(err: BaseException) -> str:
    """The first line of an error's message, or its type when the message is empty."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def mart_ref(mart: str) -> str:
    """``marts."<mart>"``: a mart's name in SQL."""
    return f"{MARTS_SCHEMA}.{quote_ident(mart)}"


def bi_select(con: duckdb.DuckDBPyConnection, mart: str) -> str:
    """``SELECT`` of one mart with BI-friendly column types."""
    described = con.execute(f"DESCRIBE {mart_ref(mart)}").fetchall()
    exprs = [_bi_expression(row[0], row[1]) for row in described]
    return f"SELECT {', '.join(exprs)} FROM {mart_ref(mart)}"


def read_mart(con: duckdb.DuckDBPyConnection, mart: str) -> pa.Table:
    return con.sql(bi_select(con, mart)).to_arrow_table()


