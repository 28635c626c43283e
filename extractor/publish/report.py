"""``bi/report.html``: one self-contained page (works offline) with a chart per use case.

plotly.js is inlined from the installed plotly package, so the page needs no network. Every
value from the data reaches the page either HTML-escaped (tables) or through plotly's JSON
encoder (which escapes ``<``). A small script records script errors and the number of
rendered charts in ``#report-status`` so a headless browser can check the page.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import plotly.io as pio
import plotly.offline

from .charts import CHARTS, ChartSpec, Columns, MissingData
from .files import write_text_atomic
from .findings import headline_findings
from .warehouse import Mart, first_line, mart_ref, quote_ident

log = logging.getLogger("aps_usage")

TOP_ROWS = 15

# Runs before anything else on the page: collects errors for the headless-browser check.
_ERROR_COLLECTOR = """
window.__reportErrors = [];
window.addEventListener('error', function (e) { window.__reportErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) { window.__reportErrors.push('promise: ' + String(e.reason)); });
(function () { var orig = console.error; console.error = function () {
  window.__reportErrors.push(Array.prototype.join.call(arguments, ' ')); return orig.apply(console, arguments); }; })();
"""

_STATUS_SCRIPT = """
window.addEventListener('load', function () { setTimeout(function () {
  var rendered = 0;
  document.querySelectorAll('.chart .js-plotly-plot').forEach(function (el) {
    if (el.querySelector('.main-svg')) { rendered += 1; } });
  var status = {errors: window.__reportErrors, charts_rendered: rendered,
                charts_expected: document.querySelectorAll('.chart').length,
                plotly_loaded: typeof window.Plotly !== 'undefined'};
  document.getElementById('report-status').textContent = JSON.stringify(status);
}, 300); });
"""

_CSS = """
body { font-family: -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1f2933; background: #f5f7fa; }
header { background: #1f3a5f; color: white; padding: 20px 32px; }
header h1 { margin: 0 0 6px 0; font-size: 24px; }
header p { margin: 2px 0; opacity: .9; }
main { padding: 16px 32px; max-width: 1320px; }
section { background: white; border-radius: 6px; padding: 16px 20px; margin: 16px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 19px; margin: 0 0 4px 0; }
p.question { color: #52606d; margin: 0 0 8px 0; }
p.warning { color: #8d2b0b; background: #fff3e6; padding: 6px 10px; border-radius: 4px; }
.table-wrap { overflow-x: auto; max-height: 420px; overflow-y: auto; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #e4e7eb; padding: 3px 6px; text-align: left; white-space: nowrap; }
th { background: #f0f4f8; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
nav a { margin-right: 12px; }
#report-status { display: none; }
"""


@dataclass
class ReportResult:
    path: Path
    charts_expected: int
    charts_built: list[str] = field(default_factory=list)
    charts_missing: dict[str, str] = field(default_factory=dict)


def default_vars() -> dict[str, object]:
    """The vars of dbt_project.yml (defaults before any --vars override)."""
    try:
        import yaml

        from ..build import dbt_project_dir

        project_yml = dbt_project_dir() / "dbt_project.yml"
        return dict(yaml.safe_load(project_yml.read_text(encoding="utf-8")).get("vars") or {})
    except Exception as err:  # no dbt project at hand: the marts' own var columns still show
        log.debug("cannot read the dbt vars: %s", err)
        return {}


def last_build_vars(data_dir: Path | None) -> dict[str, object]:
    """The --var overrides of the last dbt build (dbt records them in run_results.json)."""
    if data_dir is None:
        return {}
    try:
        args = json.loads((data_dir / "dbt" / "target" / "run_results.json").read_text(encoding="utf-8"))["args"]
        found = args.get("vars") or {}
        if isinstance(found, str):  # older dbt keeps the YAML text
            import yaml

            found = yaml.safe_load(found) or {}
        return dict(found)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def effective_vars(con: duckdb.DuckDBPyConnection, marts: list[Mart], overrides: dict | None,
                   data_dir: Path | None = None) -> dict[str, object]:
    """Thresholds used by the build: defaults, then the last build's overrides, then the values
    the marts carry as columns (they are what the rows were computed with)."""
    values = default_vars()
    values.update(last_build_vars(data_dir))
    values.update(overrides or {})
    for mart in marts:
        for name in values:
            if name in mart.columns and name != "as_of_date":
                found = con.execute(
                    f"SELECT any_value({quote_ident(name)}) FROM {mart_ref(mart.name)}"
                ).fetchone()[0]
                if found is not None:
                    values[name] = found
    return values


def as_of_date(con: duckdb.DuckDBPyConnection, marts: list[Mart]) -> str | None:
    for mart in marts:
        if "as_of_date" in mart.columns:
            value = con.execute(f"SELECT max(as_of_date) FROM {mart_ref(mart.name)}").fetchone()[0]
            if value is not None:
                return _cell(value)
    return None


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, decimal.Decimal)):
        return f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _top_rows_html(con: duckdb.DuckDBPyConnection, mart: Mart) -> str:
    result = con.execute(f"SELECT * FROM {mart_ref(mart.name)} LIMIT {TOP_ROWS}")
    rows = result.fetchall()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in mart.columns)
    body = []
    for row in rows:
        cells = []
        for value in row:
            numeric = isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)
            td = '<td class="num">' if numeric else "<td>"
            cells.append(f"{td}{html.escape(_cell(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    shown = f"first {len(rows)} of {mart.rows:,} rows" if mart.rows > len(rows) else f"{mart.rows:,} rows"
    return (
        f"<p class=\"question\">{html.escape(shown)} &mdash; the full mart is in marts/{html.escape(mart.name)}.parquet / .csv</p>"
        f"<div class=\"table-wrap\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _chart_html(con: duckdb.DuckDBPyConnection, spec: ChartSpec, mart: Mart | None, result: ReportResult) -> str:
    if mart is None:
        raise MissingData(f"mart {spec.mart} is not in the warehouse")
    figure = spec.build(con, Columns(mart.name, mart.columns))
    div = pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=f"chart-{spec.key}",
        config={"displaylogo": False, "responsive": True},
    )
    result.charts_built.append(spec.key)
    return f"<div class=\"chart\">{div}</div>"


def build_report(con: duckdb.DuckDBPyConnection, marts: list[Mart], dest: Path, vars_overrides: dict | None = None,
                 data_dir: Path | None = None) -> ReportResult:
    """Write the report page atomically; charts whose data is missing are listed, not fatal."""
    by_name = {m.name: m for m in marts}
    result = ReportResult(path=dest, charts_expected=len(CHARTS))
    sections, nav = [], []
    for spec in CHARTS:
        mart = by_name.get(spec.mart)
        try:
            chart = _chart_html(con, spec, mart, result)
        except Exception as missing:  # a chart never sinks the report (missing data or not)
            result.charts_missing[spec.key] = first_line(missing)
            log.warning("report: no chart '%s': %s", spec.title, missing)
            chart = f"<p class=\"warning\">No chart: {html.escape(str(missing))}.</p>"
        table = _top_rows_html(con, mart) if mart else ""
        nav.append(f"<a href=\"#{spec.key}\">{html.escape(spec.title)}</a>")
        sections.append(
            f"<section id=\"{spec.key}\"><h2>{html.escape(spec.title)}</h2>"
            f"<p class=\"question\">{html.escape(spec.question)} (mart <code>{html.escape(spec.mart)}</code>)</p>"
            f"{chart}{table}</section>"
        )
    charted = {spec.mart for spec in CHARTS}
    other = [m for m in marts if m.name not in charted]
    for mart in other:
        sections.append(
            f"<section id=\"mart-{html.escape(mart.name)}\"><h2>{html.escape(mart.name)}</h2>{_top_rows_html(con, mart)}</section>"
        )

    as_of = as_of_date(con, marts)
    findings = "".join(f"<li>{html.escape(f)}</li>" for f in headline_findings(con))
    findings_html = f"<section id=\"findings\"><h2>Headline findings</h2><ul>{findings}</ul></section>" if findings else ""
    var_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_cell(v) if v is not None else '(latest usage date)')}</td></tr>"
        for k, v in sorted(effective_vars(con, marts, vars_overrides, data_dir).items())
    )
    mart_rows = "".join(f"<tr><td>{html.escape(m.name)}</td><td class=\"num\">{m.rows:,}</td></tr>" for m in marts)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Autodesk usage report</title>
<script>{_ERROR_COLLECTOR}</script>
<style>{_CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body>
<header><h1>Autodesk usage report</h1>
<p>As of <strong id="as-of-date">{html.escape(as_of or 'unknown')}</strong> &middot; generated {generated} &middot; {len(marts)} marts</p></header>
<main>
<nav>{''.join(nav)}<a href="#thresholds">Thresholds</a></nav>
{findings_html}
{''.join(sections)}
<section id="thresholds"><h2>Thresholds (dbt vars) and marts</h2>
<div class="table-wrap" style="display:flex; gap:40px">
<table><thead><tr><th>var</th><th>value</th></tr></thead><tbody>{var_rows}</tbody></table>
<table><thead><tr><th>mart</th><th>rows</th></tr></thead><tbody>{mart_rows}</tbody></table>
</div></section>
</main>
<pre id="report-status"></pre>
<script>{_STATUS_SCRIPT}</script>
</body></html>
"""
    write_text_atomic(dest, page)
    return result


def report_summary(result: ReportResult) -> str:
    return json.dumps({"built": result.charts_built, "missing": result.charts_missing})
