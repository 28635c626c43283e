"""``aps-usage history``, ``restore``, ``vacuum`` and ``migrate``: the versions of the raw
Delta tables, and undoing a bad import or extraction."""

from __future__ import annotations

import json

import click

from ..config import Settings
from ..schemas import DATASETS


def _data_dir(settings: Settings):
    from ..dataset import DataDir

    return DataDir(settings.data_dir)


@click.command("history")
@click.argument("dataset", required=False, type=click.Choice(list(DATASETS)))
@click.option("--limit", default=20, show_default=True, help="Versions shown per dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print the history as JSON.")
@click.pass_obj
def history(settings: Settings, dataset: str | None, limit: int, as_json: bool) -> None:
    """Show each version of a raw dataset (all datasets without DATASET): when, which command,
    rows added and removed, sources."""
    dd = _data_dir(settings)
    names = [dataset] if dataset else list(DATASETS)
    out = {name: dd.history(name)[:limit] for name in names}
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    for name, versions in out.items():
        click.echo(f"{name}:")
        for v in versions:
            sources = ", ".join(v["sources"][:3]) + (" ..." if len(v["sources"]) > 3 else "")
            added = "-" if v["rows_added"] is None else f"+{v['rows_added']:,}"
            removed = "-" if v["rows_removed"] is None else f"-{v['rows_removed']:,}"
            click.echo(f"  v{v['version']:<4} {v['at']}  {v['command'] or v['operation']:<24} {added:>10} {removed:>10}  {sources}")


@click.command("restore")
@click.argument("dataset", type=click.Choice(list(DATASETS)))
@click.option("--version", "version", type=int, required=True, help="The version to go back to (see 'history').")
@click.pass_obj
def restore(settings: Settings, dataset: str, version: int) -> None:
    """Make an earlier version of DATASET current again (a new version; nothing is lost).
    Its extraction state goes back too, so the next extraction fetches that range again."""
    dd = _data_dir(settings)
    with dd.lock(f"restore {dataset}"):
        dd.restore(dataset, version)
    click.echo(f"{dataset}: restored version {version} (now version {dd.table(dataset).version()})")


@click.command("vacuum")
@click.option("--retention-hours", type=int, default=None,
              help="Keep files any version of this age needs (default APS_USAGE_VACUUM_RETENTION_HOURS, 168).")
@click.option("--dry-run", is_flag=True, help="List the files only.")
@click.pass_obj
def vacuum(settings: Settings, retention_hours: int | None, dry_run: bool) -> None:
    """Delete data files that no version within the retention period needs (restore cannot
    go back further than the retention)."""
    dd = _data_dir(settings)
    with dd.lock("vacuum"):
        removed = dd.vacuum(retention_hours, dry_run=dry_run)
    for name, files in removed.items():
        if files:
            click.echo(f"{name}: {'would delete' if dry_run else 'deleted'} {len(files)} file(s)")


@click.command("migrate")
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Convert a data dir written by an earlier release: the layout before the raw datasets
    were Delta tables, and row hashes of an earlier version (any command that writes does it
    too, on first use)."""
    dd = _data_dir(settings)
    with dd.lock("migrate"):  # taking the lock converts it (DataDir.ensure_tables, upgrade_row_hashes)
        converted, upgraded = dd.converted, dd.upgraded
    if converted:
        click.echo("converted " + ", ".join(f"{k} ({v:,} rows)" for k, v in converted.items()))
    if upgraded:
        click.echo("row hashes upgraded: " + ", ".join(f"{k} ({v:,} rows)" for k, v in upgraded.items()))
    if not converted and not upgraded:
        click.echo("nothing to convert")


COMMANDS = [history, restore, vacuum, migrate]
