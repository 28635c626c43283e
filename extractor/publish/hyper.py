"""Tableau: every mart as a table ``marts.<mart>`` in one ``.hyper`` extract (optional extra).

pantab bundles the Hyper engine; it is the optional extra ``tableau`` so that a plain
install stays small. pantab parses ``"a.b"`` strings as schema.table, so table names are
always passed as ``(schema, table)`` tuples.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb

from ..errors import BuildError
from .files import atomic_path
from .warehouse import MARTS_SCHEMA, read_mart

INSTALL_HINT = "pip install 'aps-usage[tableau]'"


def hyper_available() -> bool:
    try:
        return importlib.util.find_spec("pantab") is not None
    except (ImportError, ValueError):  # sys.modules["pantab"] = None counts as absent
        return False


def _pantab():
    try:
        import pantab
    except ImportError as err:
        raise BuildError(f"the Tableau .hyper output needs pantab: {INSTALL_HINT}") from err
    return pantab


def write_hyper(con: duckdb.DuckDBPyConnection, marts: list[str], dest: Path) -> dict[str, int]:
    """Write all marts into one Hyper file atomically; returns rows per mart."""
    pantab = _pantab()
    tables = {(MARTS_SCHEMA, mart): read_mart(con, mart) for mart in marts}
    with atomic_path(dest) as tmp:
        try:
            pantab.frames_to_hyper(tables, tmp)
        except Exception as err:  # the Hyper engine's own errors are not one class
            raise BuildError(f"{dest}: writing the Hyper file failed: {err}") from err
    return {mart: tables[(MARTS_SCHEMA, mart)].num_rows for mart in marts}


def read_hyper_row_counts(path: Path) -> dict[str, int]:
    """Rows per table of a Hyper file, read back through the Hyper engine (for checks and tests)."""
    pantab = _pantab()
    frames = pantab.frames_from_hyper(path, return_type="pyarrow")
    counts = {}
    for name, table in frames.items():
        parts = [str(p).strip('"') for p in (name if isinstance(name, tuple) else str(name).split("."))]
        counts[parts[-1]] = table.num_rows
    return counts
