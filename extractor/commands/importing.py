"""``aps-usage import``: hand-downloaded usage files into the raw dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import Settings
from ..importing.kinds import KINDS


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(list(KINDS)),
    help="What the files are; by default each file's (or sheet's) kind is told from its headers.",
)
@click.option(
    "--hash-personal-data",
    is_flag=True,
    help="Store e-mails and names as salted SHA-256 of the trimmed lower-cased value "
    "(the data dir's salt, as 'extract --hash-personal-data' uses, so the two still join).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def import_command(settings: Settings, paths: tuple[Path, ...], kind: str | None, hash_personal_data: bool,
                   as_json: bool) -> None:
    """Import usage files downloaded by hand from Autodesk Account.

    PATHS are CSV, XLSX (one sheet per report), ZIP or gzip files, or folders of them. Usage
    and Token Flex rows are added (rows already present are not added twice); a Users or
    Subscriptions file replaces the rows of the teams it holds; a user metadata file
    replaces the metadata. All files are imported in one transaction: if one is bad,
    nothing changes.

    \b
    Kinds: usage -> premium_usage_files, users -> premium_users,
    subscriptions -> premium_subscriptions, tokenflex -> tokenflex_usage,
    metadata -> user_metadata.
    """
    from ..importing import import_paths

    report = import_paths(settings, paths, kind=kind, hash_personal_data=hash_personal_data)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    width = max(len(f.source) for f in report.files)
    for f in report.files:
        click.echo(f"{f.source:<{width}}  {f.kind:<13}  {f.rows:>10,} rows -> {f.dataset}")
    for source, reason in report.skipped:
        click.echo(f"skipped {source}: {reason}")
    totals = ", ".join(f"{name} {rows:,}" for name, rows in sorted(report.dataset_rows.items()))
    click.echo(f"Imported {report.rows:,} rows from {len(report.files)} table(s). Rows now: {totals}.")


COMMANDS = [import_command]
