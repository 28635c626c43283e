"""Commands of the 'build' area: run the dbt project (``build``) and write its docs (``docs``)."""

from __future__ import annotations

import click

from ..build import TARGETS, generate_docs, parse_vars, run_build
from ..config import Settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj if isinstance(ctx.obj, Settings) else Settings()


@click.command("build")
@click.option("--target", type=click.Choice(TARGETS), default="duckdb", show_default=True,
              help="dbt target: DuckDB file <data-dir>/warehouse.duckdb, or a local Spark session.")
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE",
              help="Override a dbt var (repeatable), e.g. --var inactive_days=60 --var as_of_date=2026-06-30.")
@click.option("--select", "-s", "select", multiple=True, metavar="SELECTOR",
              help="dbt node selection (repeatable), e.g. --select marts.inactive_users+.")
@click.option("--exclude", multiple=True, metavar="SELECTOR", help="dbt nodes to leave out (repeatable).")
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models (fct_daily_usage) from scratch.")
@click.pass_context
def build_command(ctx: click.Context, target: str, var_pairs: tuple[str, ...], select: tuple[str, ...],
                  exclude: tuple[str, ...], full_refresh: bool) -> None:
    """Model the raw dataset with dbt: staging, core facts and dimensions, marts, and all tests.

    Runs `dbt build` in-process on <data-dir>/raw; the marts land in schema `marts` of
    <data-dir>/warehouse.duckdb (or Spark database `marts`). Prints a summary (with -v also
    one line per finished node); exits 6 naming the failing model or test."""
    settings = _settings(ctx)
    result = run_build(settings, target=target, vars=parse_vars(var_pairs), select=list(select),
                       exclude=list(exclude), full_refresh=full_refresh)
    click.echo(result.summary())


@click.command("docs")
@click.option("--target", type=click.Choice(TARGETS), default="duckdb", show_default=True, help="dbt target to document.")
@click.pass_context
def docs_command(ctx: click.Context, target: str) -> None:
    """Generate the dbt documentation site (models, columns, lineage) into <data-dir>/docs.

    Open <data-dir>/docs/static_index.html in a browser (a single self-contained file)."""
    settings = _settings(ctx)
    folder = generate_docs(settings, target=target)
    click.echo(f"dbt docs written to {folder} (open {folder / 'static_index.html'})")


COMMANDS = [build_command, docs_command]
