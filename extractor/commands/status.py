"""``aps-usage status``: what the data dir holds and how fresh it is."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import click

from ..config import Settings


def _age(then: datetime | None, now: datetime) -> str:
    if then is None:
        return "-"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def dataset_status(settings: Settings, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per dataset: rows, date range, last successful run and freshness (for the CLI and tests)."""
    from ..dataset import DataDir
    from ..lake import is_remote

    now = now or datetime.now(UTC)
    if not is_remote(settings.data_dir) and not settings.data_dir.exists():
        return []
    data_dir = DataDir(settings.data_dir)
    state = data_dir.read_state()
    out = []
    for row in data_dir.stats():
        newest = row.get("newest_extracted_at")
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        last_run = row.get("last_run") or {}
        out.append({
            "dataset": row["dataset"],
            "rows": row.get("rows", 0),
            "min_date": row.get("min_date"),
            "max_date": row.get("max_date"),
            "last_run_at": last_run.get("at"),
            "last_run_sources": last_run.get("sources", []),
            "newest_extracted_at": newest,
            "age_seconds": int((now - newest).total_seconds()) if newest else None,
            "freshness": _age(newest, now),
            "state": state.get("datasets", {}).get(row["dataset"], {}),
            "api_processed_at": _api_processed_at(state.get("datasets", {}).get(row["dataset"], {})),
            "version": row.get("version"),
        })
    return out


def _api_processed_at(entries: dict[str, Any]) -> str | None:
    """The API's own freshness (Token Flex ``lastProcessDate``) saved with each contract's
    state: the oldest of them, as the dataset is complete only up to it."""
    stamps = [e["last_process_date"] for e in entries.values() if isinstance(e, dict) and e.get("last_process_date")]
    return min(stamps) if stamps else None


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> None:
    """Show each raw dataset: rows, date range, last successful run and freshness."""
    rows = dataset_status(settings)
    if as_json:
        click.echo(json.dumps({"data_dir": settings.data_url, "datasets": rows}, indent=2,
                              default=_json_default))
        return
    if not rows:
        click.echo(f"No data yet in {settings.data_dir} (run 'aps-usage extract' or 'aps-usage import').")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data dir {settings.data_url}")
    for column in ("dataset", "rows", "from", "to", "last run (UTC)", "freshness", "API processed at", "version"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for r in rows:
        table.add_row(r["dataset"], f"{r['rows']:,}", str(r["min_date"] or "-"), str(r["max_date"] or "-"),
                      str(r["last_run_at"] or "never"), r["freshness"], r["api_processed_at"] or "-", str(r["version"]))
    sink = io.StringIO()
    Console(file=sink, width=200).print(table)
    click.echo(sink.getvalue(), nl=False)


COMMANDS = [status]
