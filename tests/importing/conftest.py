"""Helpers for the import tests: hand-made files in every format, a CLI runner bound to a
data dir, and a fingerprint of the data dir to prove a failed import changed nothing."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dataset import DataDir

OLD_USAGE_HEADER = "team_alias,autodesk_id,email,first_name,last_name,day_used,product_name,offering_name,tokens_used,usage_type,version"
NEW_USAGE_HEADER = "Team,User ID,Email,First Name,Last Name,Date,Product,Offering,Tokens Used,Usage Type,Version"
USAGE_ROWS = [
    # team, user id, email, first, last, date (ISO), product, offering, tokens, usage type, version
    ("New York Office", "U1", "ann@acme.example", "Ann", "Lee", "2026-01-05", "Revit", "AEC Collection", "0", "sus", "2026"),
    ("New York Office", "U1", "ann@acme.example", "Ann", "Lee", "2026-01-06", "AutoCAD", "AEC Collection", "0", "sus", "2026"),
    ("Munich", "U2", "bob@acme.example", "Bob", "Kurz", "2026-01-06", "Civil 3D", "Flex", "1250.5", "flex", "2025"),
    ("Munich", "U3", "cy@acme.example", "Cy", "Wu", "2026-02-01", "Revit", "Flex", "7", "flex", "2026"),
]


def csv_text(header: str, rows, delimiter: str = ",") -> str:
    lines = [header.replace(",", delimiter)]
    for row in rows:
        cells = []
        for cell in row:
            cell = str(cell)
            if delimiter in cell or '"' in cell or "\n" in cell:
                cell = '"' + cell.replace('"', '""') + '"'
            cells.append(cell)
        lines.append(delimiter.join(cells))
    return "\n".join(lines) + "\n"


def us_date(iso: str) -> str:
    y, m, d = iso.split("-")
    return f"{int(m)}/{int(d)}/{y}"


def write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def zip_bytes(members: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data.encode() if isinstance(data, str) else data)
    return sink.getvalue()


def gzip_bytes(data: bytes | str) -> bytes:
    return gzip.compress(data.encode() if isinstance(data, str) else data)


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    sink = io.BytesIO()
    wb.save(sink)
    return sink.getvalue()


def fingerprint(data_dir: Path) -> dict[str, str]:
    """Every file of the dataset and the state, by content (the lock file aside)."""
    out = {}
    for p in sorted(data_dir.rglob("*")):
        rel = p.relative_to(data_dir)
        if p.is_file() and rel.parts[0] in ("raw", "state") and p.name != "lock":
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Cli:
    data_dir: Path

    def __call__(self, *args: str, ok: bool = True):
        result = CliRunner().invoke(cli, ["--data-dir", str(self.data_dir), "-q", *map(str, args)], obj=None)
        if ok and result.exit_code != 0:
            raise AssertionError(f"aps-usage {' '.join(map(str, args))} exited {result.exit_code}:\n"
                                 f"{result.output}\n{result.exception!r}")
        return result

    def read(self, dataset: str) -> pa.Table:
        return DataDir(self.data_dir).read(dataset)

    def fingerprint(self) -> dict[str, str]:
        return fingerprint(self.data_dir)


@pytest.fixture
def run(tmp_path, monkeypatch) -> Cli:
    monkeypatch.delenv("APS_USAGE_DATA_DIR", raising=False)
    return Cli(tmp_path / "data")


@pytest.fixture
def files(tmp_path) -> Path:
    d = tmp_path / "files"
    d.mkdir()
    return d


def error_line(result) -> str:
    """The one line the CLI printed for an error (log lines aside)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("Error: ")
