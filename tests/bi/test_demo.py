"""`aps-usage demo` end to end: sandbox -> extract -> import -> dbt build -> publish, then the
published report opened in headless Chromium to prove every chart renders on the real marts."""

from __future__ import annotations

import bi_checks
import duckdb
import pyarrow.parquet as pq
import pytest
from bi_browser import dump_dom, report_status, screenshot
from bi_fixtures import require_all
from click.testing import CliRunner

from extractor.cli import cli
from extractor.publish.charts import CHARTS
from extractor.publish.hyper import hyper_available, read_hyper_row_counts

SMALL = ["--users", "40", "--days", "45", "--seed", "7"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "demo", *SMALL], obj=None)
    return data_dir, result


@pytest.mark.slow
def test_demo_writes_every_output_and_says_where(demo_run):
    data_dir, result = demo_run
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = result.output

    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        marts = {n: con.execute(f'SELECT count(*) FROM marts."{n}"').fetchone()[0] for (n,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}
    finally:
        con.close()
    for spec in CHARTS:
        assert spec.mart in marts, f"the build made no mart {spec.mart}"
    for name, rows in marts.items():
        assert pq.read_table(data_dir / "marts" / f"{name}.parquet").num_rows == rows
        assert (data_dir / "marts" / f"{name}.csv").exists()
        assert name in out, f"summary does not list mart {name}"
    for path in ("bi/report.html", "bi/aps-usage.pbids", "warehouse.duckdb", "marts", "bi/powerbi/aps-usage.pbip"):
        assert str(data_dir / path) in out, f"summary does not say where {path} is"
    assert "open in Power BI Desktop" in out
    if hyper_available():
        assert str(data_dir / "bi" / "aps-usage.twbx") in out and "open in Tableau Desktop" in out

    # one line per step, with counts and seconds; no line per dbt node, team or file
    log_lines = [line for line in out.splitlines() if " INFO " in line or " WARNING " in line]
    assert len(log_lines) == 6, "\n".join(log_lines)
    assert all(": ok - " in line and line.endswith("s)") for line in log_lines)
    assert "models" in log_lines[4] and "tests" in log_lines[4]
    for dataset in ("premium_usage", "tokenflex_usage", "user_metadata", "premium_users"):
        assert dataset in out
    assert "Headline findings" in out and out.count("  * ") == 3
    assert "sandbox-secret" not in out and "sandbox-pat" not in out

    # the sources really arrived: usage from both APIs and the imported metadata
    rows = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in out.splitlines()
            if line.startswith("  ") and len(line.split()) == 2 and line.split()[1].replace(",", "").isdigit()}
    for dataset in ("premium_usage", "tokenflex_usage", "user_metadata"):
        assert rows.get(dataset, 0) > 0, f"no rows in {dataset}"
    assert rows["inactive_users"] > 0 and rows["fct_daily_usage"] > 0

    if hyper_available():
        assert read_hyper_row_counts(data_dir / "bi" / "aps-usage.hyper") == marts
    elif require_all():
        pytest.fail("pantab missing and APS_USAGE_REQUIRE_ALL=1")


@pytest.mark.slow
def test_the_dashboards_pass_every_offline_check_on_the_real_marts(demo_run):
    data_dir, result = demo_run
    assert result.exit_code == 0, result.output
    project = data_dir / "bi" / "powerbi"
    assert bi_checks.validate_pbip_json(project) == []
    assert bi_checks.check_visual_fields(project) == []
    assert bi_checks.check_tmdl_matches_parquet(project, data_dir / "marts") == []
    definition = project / "aps-usage.SemanticModel" / "definition"
    tables = bi_checks.read_tmdl_tables(definition)
    assert "/// Users who have not used any product" in (definition / "tables" / "inactive_users.tmdl").read_text(
        encoding="utf-8")  # descriptions from the real dbt docs
    assert {"dim_users", "dim_products", "fct_daily_usage", "Team", "Date"} <= set(tables)
    if bi_checks.pq_parser_installed():
        docs = bi_checks.m_expressions(definition)
        assert bi_checks.parse_m(docs) == {name: None for name in docs}
    elif require_all():
        pytest.fail("the Power Query parser is not installed (npm ci --prefix tests/bi/pq)")
    if hyper_available():
        twb = bi_checks.read_twb(data_dir / "bi" / "aps-usage.twbx")
        assert bi_checks.validate_twb(twb) == []
        assert bi_checks.check_sheet_fields(twb, data_dir / "bi" / "aps-usage.hyper") == []


@pytest.mark.slow
def test_every_chart_renders_on_the_real_marts(demo_run, tmp_path):
    data_dir, result = demo_run
    assert result.exit_code == 0, result.output
    page = data_dir / "bi" / "report.html"
    assert "No chart:" not in page.read_text(encoding="utf-8")
    status = report_status(dump_dom(page, tmp_path))
    assert status["errors"] == []
    assert status["charts_expected"] == status["charts_rendered"] == len(CHARTS)
    screenshot(page, tmp_path)


def test_demo_refuses_a_data_dir_with_other_data(tmp_path):
    data_dir = tmp_path / "real"
    (data_dir / "raw" / "premium_usage").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(data_dir), *SMALL], obj=None)
    assert result.exit_code == 2
    assert "holds data that the demo did not write" in result.output
    assert (data_dir / "raw" / "premium_usage").is_dir()  # nothing removed


def test_a_second_demo_replaces_the_first_demos_outputs_only(tmp_path):
    from extractor.demo import MARKER, prepare_data_dir

    data_dir = tmp_path / "demo"
    prepare_data_dir(data_dir, {"users": 40})
    (data_dir / "raw" / "premium_usage").mkdir(parents=True)
    (data_dir / "warehouse.duckdb").write_bytes(b"old")
    (data_dir / "notes.txt").write_text("mine")
    prepare_data_dir(data_dir, {"users": 50})
    assert not (data_dir / "raw").exists() and not (data_dir / "warehouse.duckdb").exists()
    assert (data_dir / "notes.txt").read_text() == "mine"
    assert '"users": 50' in (data_dir / "state" / MARKER).read_text()
