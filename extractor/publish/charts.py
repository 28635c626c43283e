"""One plotly chart per use case, built from the marts' contracted column names.

Each chart is a :class:`ChartSpec`: the mart it reads and a function that aggregates in
DuckDB and returns a plotly figure. A chart whose mart or columns are missing raises
:class:`MissingData`; the report then shows the mart's table without that chart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import plotly.colors
import plotly.graph_objects as go

from .warehouse import mart_ref, quote_ident

CHART_HEIGHT = 420
DRIFT_PAIRS_SHOWN = 20


class MissingData(Exception):
    """The mart or a column a chart needs is not there."""


class Columns:
    """The columns of one mart, looked up by contracted name (or a fallback pattern)."""

    def __init__(self, mart: str, names: tuple[str, ...]):
        self.mart = mart
        self.names = names

    def has(self, *candidates: str) -> bool:
        return any(c in self.names for c in candidates)

    def get(self, *candidates: str, containing: str | None = None) -> str:
        for name in candidates:
            if name in self.names:
                return quote_ident(name)
        if containing:
            for name in self.names:
                if containing in name:
                    return quote_ident(name)
        wanted = " or ".join(candidates) or f"*{containing}*"
        raise MissingData(f"mart {self.mart} has no column {wanted}")


@dataclass(frozen=True)
class ChartSpec:
    key: str
    mart: str
    title: str
    question: str
    build: Callable[[duckdb.DuckDBPyConnection, Columns], go.Figure]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _day(value: dt.date | None) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


def _month(column_sql: str) -> str:
    return f"strftime({column_sql}, '%Y-%m')"


def _label(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    return str(value)


def _figure(title: str, x_title: str = "", y_title: str = "", barmode: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, template="plotly_white", height=CHART_HEIGHT,
        margin=dict(l=60, r=20, t=60, b=90), legend=dict(orientation="h", y=-0.25),
        xaxis_title=x_title, yaxis_title=y_title,
    )
    if barmode:
        fig.update_layout(barmode=barmode)
        fig.update_xaxes(type="category")  # labels, never a time axis with sub-second ticks
    return fig


def _stacked(rows: list[tuple], title: str, x_title: str, y_title: str, top: int = 10,
             horizontal: bool = False) -> go.Figure:
    """rows = (x, series, value): one bar trace per series, stacked; series beyond the
    ``top`` largest are summed into "other" so the legend stays readable."""
    fig = _figure(title, x_title, y_title, barmode="stack")
    totals: dict[str, float] = {}
    for _, s, v in rows:
        totals[_label(s)] = totals.get(_label(s), 0.0) + float(v or 0)
    kept = set(sorted(totals, key=lambda k: -totals[k])[:top])
    xs = sorted({_label(r[0]) for r in rows})
    series: dict[str, dict[str, float]] = {}
    for x, s, v in rows:
        name = _label(s) if _label(s) in kept else "other"
        bucket = series.setdefault(name, {})
        bucket[_label(x)] = bucket.get(_label(x), 0.0) + float(v or 0)
    for name in sorted(series, key=lambda n: (n == "other", n)):
        values = [series[name].get(x, 0) for x in xs]
        if horizontal:
            fig.add_bar(name=name, y=xs, x=values, orientation="h")
        else:
            fig.add_bar(name=name, x=xs, y=values)
    stacked_totals: dict[str, float] = {}
    for bucket in series.values():
        for x, v in bucket.items():
            stacked_totals[x] = stacked_totals.get(x, 0.0) + v
    small_counts = all(float(v or 0).is_integer() for _, _, v in rows) and max(stacked_totals.values(), default=0) <= 10
    value_axis = fig.update_xaxes if horizontal else fig.update_yaxes
    if small_counts:  # counts of a few: whole ticks, never 0.2 users
        value_axis(tick0=0, dtick=1)
    if horizontal:
        fig.update_xaxes(type="linear", title=y_title)
        fig.update_yaxes(type="category", title=x_title, automargin=True)
        fig.update_layout(height=max(CHART_HEIGHT, 120 + 22 * len(xs)))
    return fig


def _empty_note(fig: go.Figure, rows: list) -> go.Figure:
    if not rows:
        fig.add_annotation(text="No rows match this rule for the current data.", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=16))
    return fig


# ---- the use cases -------------------------------------------------------------------------

def _inactive_users(con, c: Columns) -> go.Figure:
    group = c.get("department") if c.has("department") else c.get("team_name")
    team = c.get("team_name")
    rows = _rows(con, f"SELECT {group}, {team}, count(*) FROM {mart_ref(c.mart)} GROUP BY ALL")
    fig = _stacked(rows, "Inactive users by department and team", "department", "inactive users")
    return _empty_note(fig, rows)


def _saving_bars(con, c: Columns, by: str, title: str, x_title: str) -> go.Figure:
    """Yearly saving per ``by`` value, each bar labelled with how many users it concerns."""
    group, saving = c.get(by), c.get("saving_yearly", containing="saving")
    user = c.get("user_key")
    rows = _rows(con, f"SELECT {group}, sum({saving}), count(DISTINCT {user}) FROM {mart_ref(c.mart)} "
                      f"GROUP BY 1 ORDER BY 2 DESC")
    fig = _figure(title, x_title, "saving per year")
    fig.add_bar(x=[_label(r[0]) for r in rows], y=[float(r[1] or 0) for r in rows],
                text=[f"{r[2]} users" for r in rows], textposition="outside", name="saving per year")
    return _empty_note(fig, rows)


def _flex_candidates(con, c: Columns) -> go.Figure:
    return _saving_bars(con, c, "product_name", "Flex candidates: yearly saving if moved to Flex", "product")


def _flex_overuse(con, c: Columns) -> go.Figure:
    month, product, excess = _month(c.get("usage_month")), c.get("product_name"), c.get("excess_cost", containing="excess")
    rows = _rows(con, f"SELECT {month}, {product}, sum({excess}) FROM {mart_ref(c.mart)} GROUP BY ALL")
    return _empty_note(_stacked(rows, "Flex overuse: excess cost over a subscription", "month", "excess cost"), rows)


def _flex_multi_product(con, c: Columns) -> go.Figure:
    month, days = _month(c.get("usage_month")), c.get("multi_product_days")
    user = c.get("user_key")
    rows = _rows(con, f"SELECT {month}, count(DISTINCT {user}), sum({days}) FROM {mart_ref(c.mart)} GROUP BY 1 ORDER BY 1")
    fig = _figure("Flex users with many multi-product days", "month", "users", barmode="group")
    fig.add_bar(name="users", x=[_label(r[0]) for r in rows], y=[r[1] for r in rows])
    fig.add_bar(name="multi-product days", x=[_label(r[0]) for r in rows], y=[float(r[2] or 0) for r in rows])
    return _empty_note(fig, rows)


def _low_usage(con, c: Columns) -> go.Figure:
    month, product = _month(c.get("usage_month")), c.get("product_name")
    rows = _rows(con, f"SELECT {month}, {product}, count(*) FROM {mart_ref(c.mart)} GROUP BY ALL")
    return _empty_note(_stacked(rows, "Low-usage user-months by product", "month", "users"), rows)


def _single_product_collection(con, c: Columns) -> go.Figure:
    collection, reason = c.get("collection_name"), c.get("reason")
    rows = _rows(con, f"SELECT {collection}, {reason}, count(*) FROM {mart_ref(c.mart)} GROUP BY ALL")
    return _empty_note(_stacked(rows, "Collection users using one product or rarely", "collection", "users"), rows)


def _collection_candidates(con, c: Columns) -> go.Figure:
    return _saving_bars(con, c, "collection_name", "Collection candidates: yearly saving of a collection", "collection")


def _license_utilization(con, c: Columns) -> go.Figure:
    team, offering = c.get("team_name"), c.get("offering_name")
    purchased, assigned, in_use = c.get("seats_purchased"), c.get("seats_assigned"), c.get("seats_in_use")
    rows = _rows(con, f"SELECT {offering}, sum({purchased}), sum({assigned}), sum({in_use}) "
                      f"FROM {mart_ref(c.mart)} GROUP BY 1 ORDER BY 1")
    fig = _figure("Seats purchased, assigned and in use by offering (all teams)", "offering", "seats", barmode="group")
    xs = [_label(r[0]) for r in rows]
    for i, name in enumerate(("purchased", "assigned", "in use"), start=1):
        fig.add_bar(name=name, x=xs, y=[float(r[i] or 0) for r in rows])
    del team  # per-team detail is in the table; the chart sums teams
    return _empty_note(fig, rows)


def _license_utilization_by_org(con, c: Columns) -> go.Figure:
    department, geo = c.get("department"), c.get("geo")
    assigned, in_use = c.get("seats_assigned"), c.get("seats_in_use")
    rows = _rows(con, f"SELECT {department}, {geo}, sum({in_use}), sum({assigned}) FROM {mart_ref(c.mart)} GROUP BY ALL")
    departments = sorted({_label(r[0]) for r in rows})
    geos = sorted({_label(r[1]) for r in rows})
    pct = {(_label(r[0]), _label(r[1])): (100.0 * float(r[2] or 0) / float(r[3]) if r[3] else None) for r in rows}
    text = {(_label(r[0]), _label(r[1])): f"{int(r[2] or 0)}/{int(r[3] or 0)}" for r in rows}
    fig = _figure("Seat utilisation (in use / assigned, %) by department and geo", "geo", "department")
    fig.add_heatmap(
        x=geos, y=departments, z=[[pct.get((d, g)) for g in geos] for d in departments],
        text=[[text.get((d, g), "") for g in geos] for d in departments], texttemplate="%{text}",
        colorscale="RdYlGn", zmin=0, zmax=100, colorbar=dict(title="% in use"),
    )
    return _empty_note(fig, rows)


def _version_drift(con, c: Columns) -> go.Figure:
    """The project x product pairs with the most versions in use (then most users), as rows."""
    project, product, version, users = c.get("project"), c.get("product_name"), c.get("version"), c.get("users")
    pairs = DRIFT_PAIRS_SHOWN
    rows = _rows(con, f"""
        WITH pairs AS (
            SELECT {project} AS project, {product} AS product, count(DISTINCT {version}) AS versions,
                   sum({users}) AS total_users
            FROM {mart_ref(c.mart)} GROUP BY 1, 2 ORDER BY versions DESC, total_users DESC, 1, 2 LIMIT {pairs})
        SELECT m.{project} || ' · ' || m.{product}, m.{version}, sum(m.{users})
        FROM {mart_ref(c.mart)} AS m JOIN pairs AS p ON p.project = m.{project} AND p.product = m.{product}
        GROUP BY ALL""")
    title = f"Versions in use per project and product (the {pairs} pairs with most versions)"
    return _empty_note(_stacked(rows, title, "project · product", "users", horizontal=True), rows)


def _usage_by_cost_center(con, c: Columns) -> go.Figure:
    cost_center, days, tokens = c.get("cost_center"), c.get("usage_days"), c.get("tokens")
    rows = _rows(con, f"SELECT {cost_center}, sum({days}), sum({tokens}) FROM {mart_ref(c.mart)} GROUP BY 1 ORDER BY 1")
    fig = _figure("Usage days and tokens by cost center", "cost center", "usage days", barmode="group")
    xs = [_label(r[0]) for r in rows]
    fig.add_bar(name="usage days", x=xs, y=[float(r[1] or 0) for r in rows], offsetgroup=0)
    fig.add_bar(name="tokens", x=xs, y=[float(r[2] or 0) for r in rows], yaxis="y2", offsetgroup=1)
    fig.update_layout(yaxis2=dict(title="tokens", overlaying="y", side="right", showgrid=False))
    return _empty_note(fig, rows)


def _flex_usage_by_cost_center(con, c: Columns) -> go.Figure:
    cost_center, department = c.get("cost_center"), c.get("department")
    cost = c.get("token_cost", containing="cost") if c.has("token_cost") else c.get("tokens")
    rows = _rows(con, f"SELECT {cost_center}, {department}, sum({cost}) FROM {mart_ref(c.mart)} GROUP BY ALL")
    title = "Flex token cost by cost center and department"
    return _empty_note(_stacked(rows, title, "cost center", "token cost" if c.has("token_cost") else "tokens"), rows)


def _token_balance(con, c: Columns) -> go.Figure:
    """Per contract year: tokens left from the year's start to the as-of date (solid), then
    burning at the trailing daily average until they run out or the year ends (dashed)."""
    cols = [c.get("contract_number"), c.get("contract_year"), c.get("year_start_date"), c.get("year_end_date"),
            c.get("provisioned_tokens"), c.get("remaining_tokens", containing="remaining"),
            c.get("avg_daily_burn", containing="burn"), c.get("as_of_date")]
    run_out = c.get("projected_run_out_date", containing="run_out") if c.has("projected_run_out_date") else "NULL"
    rows = _rows(con, f"SELECT {', '.join(cols)}, {run_out} FROM {mart_ref(c.mart)} ORDER BY 1, 2")
    fig = _figure("Token balance forecast: tokens left per contract year", "date", "tokens remaining")
    palette = plotly.colors.qualitative.Plotly
    for i, (contract, year, start, end, provisioned, remaining, burn, as_of, runs_out) in enumerate(rows):
        if start is None or end is None or as_of is None or provisioned is None:
            continue
        start, end, as_of, runs_out = (_day(d) for d in (start, end, as_of, runs_out))
        name, color = f"{contract} year {year}", palette[i % len(palette)]
        provisioned, remaining, burn = float(provisioned), float(remaining or 0), float(burn or 0)
        if start > as_of:  # not started: the full allowance, flat
            fig.add_scatter(name=f"{name} (not started)", mode="lines", line=dict(dash="dot", color=color),
                            x=[start.isoformat(), end.isoformat()], y=[provisioned, provisioned])
            continue
        fig.add_scatter(name=name, mode="lines+markers", line=dict(color=color), legendgroup=name,
                        x=[start.isoformat(), min(as_of, end).isoformat()], y=[provisioned, remaining])
        if as_of >= end:
            continue
        if runs_out is None and burn > 0 and as_of + dt.timedelta(days=remaining / burn) <= end:
            runs_out = as_of + dt.timedelta(days=round(remaining / burn))
        if runs_out is not None and runs_out <= end:
            stop, left = runs_out, 0.0
            fig.add_annotation(x=stop.isoformat(), y=0, text=f"runs out {stop.isoformat()}", showarrow=True,
                               arrowhead=2, ay=-40)
        else:
            stop, left = end, max(remaining - burn * (end - as_of).days, 0.0)
        fig.add_scatter(name=f"{name} forecast", mode="lines", line=dict(dash="dash", color=color),
                        legendgroup=name, x=[as_of.isoformat(), stop.isoformat()], y=[remaining, left])
    fig.add_hline(y=0, line=dict(color="#888", width=1))
    return _empty_note(fig, rows)


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("inactive_users", "inactive_users", "Inactive users",
              "Users with a seat or usage who used nothing in the last inactive_days days.", _inactive_users),
    ChartSpec("flex_candidates", "flex_candidates", "Flex candidates and savings",
              "Subscription users whose light use would cost less on Flex.", _flex_candidates),
    ChartSpec("flex_overuse", "flex_overuse", "Flex overuse",
              "Flex users paying more in tokens than a subscription would cost (excess cost).", _flex_overuse),
    ChartSpec("low_usage_users", "low_usage_users", "Low usage",
              "User-months with 1 to low_usage_max_days days of use.", _low_usage),
    ChartSpec("flex_multi_product_daily", "flex_multi_product_daily", "Flex multi-product days",
              "Flex users who often use several products on the same day.", _flex_multi_product),
    ChartSpec("single_product_collection_users", "single_product_collection_users", "Under-used collections",
              "Collection users who use one product of it, or use it rarely.", _single_product_collection),
    ChartSpec("collection_candidates", "collection_candidates", "Collection candidates",
              "Users of several standalone products that one collection would cover for less.", _collection_candidates),
    ChartSpec("license_utilization", "license_utilization", "Licence utilisation",
              "Seats purchased, assigned and in use per offering.", _license_utilization),
    ChartSpec("license_utilization_by_org", "license_utilization_by_org", "Licence utilisation by department and geo",
              "Share of assigned seats in use, per department and geo.", _license_utilization_by_org),
    ChartSpec("project_version_drift", "project_version_drift", "Version drift by project",
              "Projects whose users run more than one version of a product.", _version_drift),
    ChartSpec("usage_by_cost_center", "usage_by_cost_center", "Usage and tokens by cost center",
              "Usage days and tokens per cost center (all licensing models).", _usage_by_cost_center),
    ChartSpec("flex_usage_by_cost_center", "flex_usage_by_cost_center", "Flex cost by cost center",
              "Flex token cost per cost center and department.", _flex_usage_by_cost_center),
    ChartSpec("token_balance", "token_balance", "Token balance forecast",
              "Remaining Flex tokens per contract year and when they run out at the current burn.", _token_balance),
)
