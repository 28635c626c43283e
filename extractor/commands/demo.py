"""``aps-usage demo``: the whole pipeline on sandbox data, in one command."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Settings
from ..demo import DEFAULT_DAYS, DEFAULT_SEED, DEFAULT_USERS, DemoResult, run_demo
from .publish import describe_outputs


def summary_lines(result: DemoResult) -> list[str]:
    lines = [f"Demo finished in {result.seconds:.1f} s (data dir {result.data_dir}).", "", "Source datasets (rows):"]
    for name, rows in result.source_rows.items():
        lines.append(f"  {name:<24} {rows:>8,}")
    marts = result.publish.marts if result.publish else []
    lines += ["", f"Marts built ({len(marts)}, rows):"]
    for mart in marts:
        lines.append(f"  {mart.name:<34} {mart.rows:>8,}")
    lines += ["", "Outputs:", f"  warehouse: {result.data_dir / 'warehouse.duckdb'}"]
    if result.publish:
        lines += describe_outputs(result.publish)
    if result.downloads:
        lines.append(f"  sandbox hand-download files ({len(result.downloads)}): {result.downloads[0].parent} "
                     "(try `aps-usage import <file>`)")
    if result.findings:
        lines += ["", "Headline findings:"] + [f"  * {f}" for f in result.findings]
    lines += ["", "Step timings: " + ", ".join(f"{name.split(' (')[0]} {sec:.1f}s" for name, sec in result.timings.items())]
    return lines


@click.command("demo")
@click.option("--data-dir", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo writes (same as the global --data-dir; must be empty or an earlier demo's).")
@click.option("--users", type=click.IntRange(1, 100_000), default=DEFAULT_USERS, show_default=True,
              help="Users the sandbox generates.")
@click.option("--days", type=click.IntRange(1, 3650), default=DEFAULT_DAYS, show_default=True,
              help="Days of usage the sandbox generates (ending yesterday).")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True, help="Random seed of the sandbox data.")
@click.pass_obj
def demo(settings: Settings | None, data_dir: Path | None, users: int, days: int, seed: int) -> None:
    """Try everything without an Autodesk account, offline, in under a minute.

    \b
    Starts the sandbox API on a free 127.0.0.1 port, extracts Premium Reporting and
    Token Flex from it, writes the sandbox's hand-download files and imports its
    user_metadata.csv, builds the marts (DuckDB), publishes every BI output, stops the
    sandbox and prints where everything is and three headline findings.
    """
    settings = settings or Settings()
    if data_dir is not None:
        settings = Settings(data_dir=data_dir, base_url=settings.base_url, verbose=settings.verbose,
                            quiet=settings.quiet)
    result = run_demo(settings, users=users, days=days, seed=seed)
    for line in summary_lines(result):
        click.echo(line)


COMMANDS = [demo]
