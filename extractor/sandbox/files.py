"""The files an admin downloads by hand: Autodesk Account usage/users/subscriptions reports (CSV
and one XLSX workbook), a Token Flex export CSV, and the customer's ``user_metadata.csv``."""

from __future__ import annotations

import datetime
import io
import os
import re
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from . import reports
from .data import SandboxData

NAMINGS = ("old", "2026")

#: Token Flex export columns (header = requested field and metric names) -> generated column
TOKENFLEX_EXPORT_COLUMNS = {
    "usageDate": "usage_date", "contractYear": "contract_year", "usageCategory": "usage_category",
    "chargeCategory": "charge_category", "productLineCode": "product_line_code", "productName": "product_name",
    "productVersion": "product_version", "productFeatureCode": "product_feature_code", "userName": "user_name",
    "machineName": "machine_name", "licenseServerName": "license_server_name", "usageType": "usage_type",
    "chargedItemID": "charged_item_id", "sessionStartDate": "session_start_date",
    "sessionEndDate": "session_end_date", **{f"customField{i}": f"custom_field{i}" for i in range(1, 11)},
    "tokensConsumed": "tokens_consumed", "usageMinutes": "usage_minutes", "usageHours": "usage_hours",
    "useCount": "use_count",
}
METADATA_COLUMNS = ("email", "geo", "country", "city", "department", "cost_center", "project", "skill_level")


def _atomic_write(path: Path, payload: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are ordinary report files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def _xlsx(sheets: dict[str, pa.Table], made: datetime.date) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for title, table in sheets.items():
        ws = wb.create_sheet(title)
        ws.append(table.column_names)
        for batch in table.to_batches(50_000):
            for row in zip(*(c.to_pylist() for c in batch.columns)):
                ws.append(list(row))
    sink = io.BytesIO()
    wb.save(sink)
    return _stamped(sink.getvalue(), made)


def _stamped(workbook: bytes, made: datetime.date) -> bytes:
    """The workbook with ``made`` as its document dates and its zip entries' times instead of
    the clock's, so the same data gives the same bytes (openpyxl stamps the time of saving)."""
    when = f"{made:%Y-%m-%d}T00:00:00Z".encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            body = source.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*", rb"\g<1>" + when, body)
            target.writestr(zipfile.ZipInfo(entry.filename, date_time=(made.year, made.month, made.day, 0, 0, 0)),
                            body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def tokenflex_export_table(data: SandboxData) -> pa.Table:
    t = data.tokenflex_usage
    out = {}
    for header, column in TOKENFLEX_EXPORT_COLUMNS.items():
        col = t[column]
        if pa.types.is_timestamp(col.type):
            col = pa.array([v.strftime("%Y-%m-%dT%H:%M:%S") if v else None for v in col.to_pylist()], pa.string())
        out[header] = col
    return pa.table(out)


def write_files(data: SandboxData, out_dir, naming: str = "old") -> list[Path]:
    """Write every hand-download file into ``out_dir``; returns their paths (each written atomically)."""
    if naming not in NAMINGS:
        raise ValueError(f"naming must be one of {', '.join(NAMINGS)}, got {naming!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    usage = reports.usage_report(data, naming)
    users = reports.users_report(data, naming)
    subscriptions = reports.subscriptions_report(data, naming)
    stamp = f"{data.start_date:%Y%m%d}-{data.end_date:%Y%m%d}"
    if naming == "old":
        names = {"usage": f"usage_report_{stamp}.csv", "users": "user_report.csv",
                 "subscriptions": "subscription_report.csv", "xlsx": f"premium_reports_{stamp}.xlsx"}
    else:
        names = {"usage": f"Usage Report {stamp}.csv", "users": "Users Report.csv",
                 "subscriptions": "Subscriptions Report.csv", "xlsx": f"Premium Reports {stamp}.xlsx"}
    written = [
        _atomic_write(out / names["usage"], _csv(usage)),
        _atomic_write(out / names["users"], _csv(users)),
        _atomic_write(out / names["subscriptions"], _csv(subscriptions)),
        _atomic_write(out / names["xlsx"], _xlsx({"Subscriptions": subscriptions, "Users": users, "Usage": usage}, data.end_date)),
        _atomic_write(out / f"tokenflex_export_{data.contract_number}_{stamp}.csv", _csv(tokenflex_export_table(data))),
        _atomic_write(out / "user_metadata.csv", _csv(data.metadata.select(list(METADATA_COLUMNS)))),
    ]
    return written
