"""``aps-usage teams|contracts`` (what the credentials see) and ``extract premium|tokenflex``."""

from __future__ import annotations

import sys
from datetime import date

import click

from ..auth import Auth
from ..config import Settings
from ..http import ApiClient
from ..incremental import DEFAULT_LAG_DAYS

_DATE = click.DateTime(formats=["%Y-%m-%d"])


def _day(value) -> date | None:
    return value.date() if value is not None else None


def _print_table(title: str, columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console(file=sys.stdout, width=200).print(table)


@click.command("teams")
@click.pass_obj
def teams(settings: Settings) -> None:
    """List the Premium teams (contexts) these credentials can report on."""
    from ..premium import list_teams

    with ApiClient(settings, Auth(settings)) as api:
        found = list_teams(api)
    _print_table(f"{len(found)} Premium team(s)", ["team id", "name", "reporting benefits"],
                 [[t["context_id"], t["team_name"], t["reporting_benefits"]] for t in found])


@click.command("contracts")
@click.pass_obj
def contracts(settings: Settings) -> None:
    """List the Token Flex contracts these credentials can see."""
    from ..tokenflex import list_contracts

    with ApiClient(settings, Auth(settings)) as api:
        found = list_contracts(api)
    _print_table(f"{len(found)} Token Flex contract(s)", ["contract", "name", "start", "end", "active"],
                 [[c["contract_number"], c["contract_name"], c["contract_start_date"], c["contract_end_date"],
                   c["is_active"]] for c in found])


@click.group("extract")
def extract() -> None:
    """Extract usage from the APIs into <data-dir>/raw (incremental; re-runs replace their range)."""


_since = click.option("--since", type=_DATE, help="First day (YYYY-MM-DD). Default: the last extracted day "
                      "minus --lag-days, or 365 days before --until on a first run.")
_until = click.option("--until", type=_DATE, help="Last day, included (YYYY-MM-DD). Default: today (UTC).")
_lag = click.option("--lag-days", type=click.IntRange(0, 3650), default=DEFAULT_LAG_DAYS, show_default=True,
                    help="Days before the last extracted day to extract again (late-arriving usage).")
_hash = click.option("--hash-personal-data", is_flag=True,
                     help="Replace emails and names by salted SHA-256 (salt in <data-dir>/state/salt) before writing.")


@extract.command("premium")
@click.option("--team", "teams_", multiple=True, metavar="ID", help="Team (context) id; repeatable. Default: all teams.")
@_since
@_until
@click.option("--reports", default="usage,users,subscriptions", show_default=True,
              help="Comma-separated: usage (usage queries), users, subscriptions (exports); also "
                   "usage-export (the USAGE export report -> premium_usage_files; ranges over 365 days are split).")
@_lag
@_hash
@click.pass_obj
def premium(settings: Settings, teams_: tuple[str, ...], since, until, reports: str, lag_days: int,
            hash_personal_data: bool) -> None:
    """Premium Reporting: teams, usage per day/user/product, Users and Subscriptions reports."""
    from ..premium import extract_premium

    with ApiClient(settings, Auth(settings)) as api:
        result = extract_premium(settings, api.auth, teams=list(teams_) or None, since=_day(since), until=_day(until),
                                 reports=reports.split(","), lag_days=lag_days, hash_personal_data=hash_personal_data,
                                 api=api)
    ranges = "; ".join(f"team {t} {a}..{b}" for t, (a, b) in result.ranges.items())
    rows = ", ".join(f"{d} {n}" for d, n in result.rows.items())
    click.echo(f"Premium: {len(result.teams)} team(s); rows received: {rows or 'none'}" + (f"; {ranges}" if ranges else ""))
    if result.personal_hidden:
        click.echo(f"Personal data hidden by the admin for team(s) {', '.join(result.personal_hidden)}: "
                   "no names/emails in their usage.", err=True)


@extract.command("tokenflex")
@click.option("--contract", "contracts_", multiple=True, metavar="N", help="Contract number; repeatable. Default: all.")
@_since
@_until
@_lag
@_hash
@click.pass_obj
def tokenflex(settings: Settings, contracts_: tuple[str, ...], since, until, lag_days: int,
              hash_personal_data: bool) -> None:
    """Token Flex: contracts (per year), custom field names, usage sessions through CSV exports."""
    from ..tokenflex import extract_tokenflex

    with ApiClient(settings, Auth(settings)) as api:
        result = extract_tokenflex(settings, api.auth, contracts=list(contracts_) or None, since=_day(since),
                                   until=_day(until), lag_days=lag_days, hash_personal_data=hash_personal_data,
                                   api=api)
    ranges = "; ".join(f"contract {c} {a}..{b}" for c, (a, b) in result.ranges.items())
    rows = ", ".join(f"{d} {n}" for d, n in result.rows.items())
    processed = "; ".join(f"contract {c} processed by Autodesk at {when}" for c, when in result.processed.items())
    click.echo(f"Token Flex: {len(result.contracts)} contract(s); rows received: {rows or 'none'}"
               + (f"; {ranges}" if ranges else "") + (f" ({processed})" if processed else ""))


COMMANDS = [teams, contracts, extract]
