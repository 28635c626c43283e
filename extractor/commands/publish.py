"""``aps-usage publish``: the marts as Parquet/CSV, a Power BI project, a Tableau workbook and .hyper, a .pbids, an HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..config import Settings
from ..publish import FORMATS, parse_formats

if TYPE_CHECKING:
    from ..publish import PublishResult


def describe_outputs(result: PublishResult) -> list[str]:
    """Human lines saying where each output is (shared with `aps-usage demo`)."""
    lines = []
    if result.paths("parquet") or result.paths("csv"):
        kinds = " + ".join(k for k in ("parquet", "csv") if result.paths(k))
        lines.append(f"  marts ({kinds}, {len(result.marts)} marts): {result.marts_dir}")
    labels = {
        "pbip": "Power BI project (open in Power BI Desktop: File > Open > this .pbip; refresh to load the marts)",
        "twbx": "Tableau workbook (double-click or open in Tableau Desktop; the extract is inside)",
        "hyper": "Tableau extract", "pbids": "Power BI data source (opens Get Data on the marts folder)",
        "html": "HTML report (any browser, offline)",
    }
    for fmt, label in labels.items():
        for path in result.paths(fmt):
            lines.append(f"  {label}: {path}")
    for fmt, why in result.skipped.items():
        lines.append(f"  skipped {fmt}: {why}")
    if result.report and result.report.charts_missing:
        lines.append(f"  report charts without data: {', '.join(sorted(result.report.charts_missing))}")
    return lines


@click.command("publish")
@click.option(
    "--formats",
    metavar="LIST",
    help=f"Comma-separated outputs to write, from {','.join(FORMATS)} (default: all; "
    "hyper is skipped with a warning when pantab is missing unless named here).",
)
@click.pass_obj
def publish_command(settings: Settings | None, formats: str | None) -> None:
    """Publish every mart of the last build to BI formats.

    \b
    Writes, under the data dir:
      marts/<mart>.parquet and .csv  (Excel-safe CSV: UTF-8 BOM, ISO dates, formula-safe)
      bi/powerbi/aps-usage.pbip      (Power BI Desktop: a model and a page per use case)
      bi/aps-usage.twbx              (Tableau: a dashboard per use case; needs the tableau extra)
      bi/aps-usage.hyper             (Tableau; needs pip install 'aps-usage[tableau]')
      bi/aps-usage.pbids             (double-click: Power BI opens the marts folder)
      bi/report.html                 (offline page, one chart per use case)
    """
    settings = settings or Settings()
    wanted, explicit = parse_formats(formats)
    from ..publish import publish  # loads DuckDB and the BI writers: only to publish

    result = publish(settings, wanted, explicit=explicit)
    click.echo(f"Published {len(result.marts)} marts:")
    for line in describe_outputs(result):
        click.echo(line)


COMMANDS = [publish_command]
