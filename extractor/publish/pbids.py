"""Power BI: a ``.pbids`` data-source file that opens Get Data on the folder of Parquet marts.

Shape (Power BI "data source files"): ``{"version": "0.1", "connections": [{"details":
{"protocol": "folder", "address": {"path": ...}}, "mode": "Import"}]}``; one connection per file.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import write_text_atomic


def pbids_document(marts_dir: Path) -> dict:
    return {
        "version": "0.1",
        "connections": [
            {
                "details": {"protocol": "folder", "address": {"path": str(marts_dir.resolve())}},
                "mode": "Import",
            }
        ],
    }


def write_pbids(marts_dir: Path, dest: Path) -> Path:
    return write_text_atomic(dest, json.dumps(pbids_document(marts_dir), indent=2) + "\n")
