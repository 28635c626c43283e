"""Publish every table of schema ``marts`` to the formats asked for.

Outputs (under the data dir):
  marts/<mart>.parquet, marts/<mart>.csv   one pair per mart (the Power BI folder)
  bi/aps-usage.hyper                        every mart as a Tableau table (extra ``tableau``)
  bi/aps-usage.pbids                        opens Power BI's Get Data on marts/
  bi/report.html                            the offline report page
  bi/powerbi/aps-usage.pbip (+ folders)     a Power BI Project: model + a page per use case
  bi/aps-usage.twbx                         a Tableau packaged workbook: the .hyper + a dashboard per use case
Each file is written to a temporary sibling and renamed into place, so a failed run leaves
the previous outputs whole.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ..config import Settings
from ..errors import BuildError
from ..logs import progress
from .files import remove_stale_temp_files, write_text_atomic
from .formats import FORMATS
from .hyper import INSTALL_HINT, hyper_available, write_hyper
from .parquet_csv import publish_mart_files
from .pbids import write_pbids
from .powerbi import write_pbip
from .report import ReportResult, build_report
from .semantic import build_model
from .tableau import write_twbx
from .warehouse import Mart, first_line, list_marts, open_warehouse

log = logging.getLogger("aps_usage")

HYPER_NAME = "aps-usage.hyper"
PBIDS_NAME = "aps-usage.pbids"
REPORT_NAME = "report.html"
POWERBI_DIR = "powerbi"
TWBX_NAME = "aps-usage.twbx"
MANIFEST_NAME = "publish-manifest.json"


@dataclass
class PublishResult:
    marts: list[Mart]
    marts_dir: Path
    bi_dir: Path
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    report: ReportResult | None = None

    def paths(self, fmt: str) -> list[Path]:
        return self.outputs.get(fmt, [])


def _remove_dropped_marts(marts_dir: Path, bi_dir: Path, current: set[str]) -> None:
    """Files of marts that no longer exist would still be loaded by a Power BI folder query."""
    manifest = bi_dir / MANIFEST_NAME
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8")).get("marts", {})
    except (OSError, ValueError):
        return
    for name in set(previous) - current:
        for suffix in (".parquet", ".csv"):
            stale = marts_dir / f"{name}{suffix}"
            if stale.exists():
                log.info("removing %s (mart %s no longer built)", stale, name)
                stale.unlink()


def publish_to_storage(settings: Settings, marts_dir: Path, bi_dir: Path) -> None:
    """A data dir on object storage gets the outputs beside its raw tables (<url>/marts, <url>/bi)."""
    from ..lake import is_remote, join, upload_folder

    if is_remote(settings.data_dir):
        for folder in (marts_dir, bi_dir):
            upload_folder(folder, join(settings.data_url, folder.name))


def publish(
    settings: Settings,
    formats: set[str] | None = None,
    explicit: bool = False,
    vars_overrides: dict | None = None,
) -> PublishResult:
    """Write the BI outputs for every mart; ``explicit`` = the user named the formats."""
    formats = set(formats or FORMATS)
    marts_dir = settings.data_dir / "marts"
    bi_dir = settings.data_dir / "bi"
    skipped = {}
    if formats & {"hyper", "twbx"} and not hyper_available():
        if explicit:
            raise BuildError(f"the Tableau .hyper and .twbx outputs need pantab, which is not installed: {INSTALL_HINT}")
        log.warning("skipping the Tableau .hyper and .twbx files: pantab is not installed (%s)", INSTALL_HINT)
        for fmt in formats & {"hyper", "twbx"}:
            skipped[fmt] = f"pantab not installed ({INSTALL_HINT})"
        formats -= {"hyper", "twbx"}
    if formats & {"pbip", "twbx"}:
        formats.add("parquet")  # both dashboards are generated from the Parquet marts' schema
    if "twbx" in formats:
        formats.add("hyper")  # the packaged workbook carries the extract

    con = open_warehouse(settings.warehouse_path)
    try:
        marts = list_marts(con)
        if not marts:
            raise BuildError(f"{settings.warehouse_path}: schema marts holds no tables; run `aps-usage build` first")
        result = PublishResult(marts=marts, marts_dir=marts_dir, bi_dir=bi_dir, skipped=skipped)
        for d in (marts_dir, bi_dir):
            d.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(d)

        file_formats = formats & {"parquet", "csv"}
        if file_formats:
            with progress(f"Writing {'/'.join(sorted(file_formats))} for {len(marts)} marts", total=len(marts),
                          quiet=settings.quiet) as task:
                for mart in marts:
                    try:
                        written = publish_mart_files(con, mart.name, marts_dir, file_formats)
                    except duckdb.Error as err:  # e.g. a value no BI type can hold
                        raise BuildError(f"mart {mart.name}: cannot export: {first_line(err)}") from err
                    for fmt, path in written.items():
                        result.outputs.setdefault(fmt, []).append(path)
                    task.advance()
            _remove_dropped_marts(marts_dir, bi_dir, {m.name for m in marts})

        if "hyper" in formats:
            with progress("Writing the Tableau .hyper file", total=1, quiet=settings.quiet) as task:
                dest = bi_dir / HYPER_NAME
                try:
                    write_hyper(con, [m.name for m in marts], dest)
                except duckdb.Error as err:
                    raise BuildError(f"{dest}: cannot read the marts: {first_line(err)}") from err
                result.outputs["hyper"] = [dest]
                task.advance()

        if formats & {"pbip", "twbx"}:
            model = build_model(marts_dir, [m.name for m in marts], settings.data_dir / "dbt" / "target" / "manifest.json")
            if "pbip" in formats:
                with progress("Writing the Power BI project", total=1, quiet=settings.quiet) as task:
                    result.outputs["pbip"] = [write_pbip(model, marts_dir.resolve(), bi_dir / POWERBI_DIR)]
                    task.advance()
            if "twbx" in formats:
                with progress("Writing the Tableau workbook", total=1, quiet=settings.quiet) as task:
                    result.outputs["twbx"] = [write_twbx(model, bi_dir / HYPER_NAME, bi_dir / TWBX_NAME)]
                    task.advance()

        if "pbids" in formats:
            result.outputs["pbids"] = [write_pbids(marts_dir, bi_dir / PBIDS_NAME)]

        if "html" in formats:
            with progress("Writing the HTML report", total=1, quiet=settings.quiet) as task:
                result.report = build_report(con, marts, bi_dir / REPORT_NAME, vars_overrides, settings.data_dir)
                result.outputs["html"] = [result.report.path]
                task.advance()

        write_text_atomic(bi_dir / MANIFEST_NAME, json.dumps({
            "marts": {m.name: m.rows for m in marts},
            "outputs": {k: [str(p) for p in v] for k, v in result.outputs.items()},
        }, indent=2) + "\n")
        publish_to_storage(settings, marts_dir, bi_dir)
        return result
    finally:
        con.close()
