"""The HTML report: self-contained, escaped, every chart rendered in a real (headless) browser."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bi_browser import dump_dom, report_status, screenshot
from bi_fixtures import FAKE_MARTS, HOSTILE_HTML, make_fake_warehouse

from extractor.config import Settings
from extractor.publish import publish
from extractor.publish.charts import CHARTS


def test_report_is_offline_and_escapes_the_data(fake_data_dir):
    data_dir, _ = fake_data_dir
    result = publish(Settings(data_dir=data_dir), {"html"})
    page = (data_dir / "bi" / "report.html").read_text(encoding="utf-8")
    assert result.report.charts_missing == {}
    assert sorted(result.report.charts_built) == sorted(spec.key for spec in CHARTS)
    # no network: no external script or stylesheet
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=\"?https?:", page)
    # hostile values appear escaped in tables, never as markup
    assert HOSTILE_HTML not in page
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert 'id="as-of-date">2026-11-20<' in page
    assert "inactive_days" in page and "lookback_days" in page  # thresholds shown
    # headline findings computed from the marts: 8 of the 12 fake inactive users hold a seat
    assert "8 users hold a seat but used nothing in the last 30 days (12 inactive users in all)" in page
    assert "6 light subscription users would cost 4,200 less per year on Flex." in page


def test_report_renders_every_chart_in_headless_chromium(fake_data_dir, tmp_path):
    data_dir, _ = fake_data_dir
    publish(Settings(data_dir=data_dir), {"html"})
    page = data_dir / "bi" / "report.html"
    dom = dump_dom(page, tmp_path)
    status = report_status(dom)
    assert status["errors"] == []
    assert status["plotly_loaded"] is True
    assert status["charts_expected"] == len(CHARTS)
    assert status["charts_rendered"] == len(CHARTS)
    assert '<img src="x"' not in dom  # the hostile value never became an element
    png = screenshot(page, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_columns_drop_the_chart_not_the_report(tmp_path, caplog):
    marts = dict(FAKE_MARTS)
    marts["flex_overuse"] = "SELECT 'u1' AS user_key, 'Revit' AS product_name, DATE '2026-10-01' AS usage_month"
    del marts["token_balance"]
    data_dir = tmp_path / "data"
    make_fake_warehouse(data_dir / "warehouse.duckdb", marts)
    logger = logging.getLogger("aps_usage")  # does not propagate once the CLI set it up
    logger.addHandler(caplog.handler)
    try:
        result = publish(Settings(data_dir=data_dir), {"html"})
    finally:
        logger.removeHandler(caplog.handler)
    assert set(result.report.charts_missing) == {"flex_overuse", "token_balance"}
    assert "excess_cost" in result.report.charts_missing["flex_overuse"]
    assert any("flex_overuse" in r.getMessage() or "Flex overuse" in r.getMessage() for r in caplog.records)
    page = (data_dir / "bi" / "report.html").read_text(encoding="utf-8")
    assert "No chart: mart flex_overuse has no column excess_cost" in page
    assert "u1" in page  # the mart's rows are still shown
    status = report_status(dump_dom(data_dir / "bi" / "report.html", tmp_path))
    assert status["errors"] == []
    assert status["charts_rendered"] == status["charts_expected"] == len(CHARTS) - 2


def test_every_chart_reads_a_contracted_mart():
    contract = (Path(__file__).resolve().parents[2] / "docs" / "use-cases.md").read_text(encoding="utf-8")
    for spec in CHARTS:
        assert f"`{spec.mart}`" in contract, spec.mart


def test_thresholds_shown_are_the_ones_the_build_used(fake_data_dir):
    data_dir, _ = fake_data_dir
    target = data_dir / "dbt" / "target"
    target.mkdir(parents=True)
    (target / "run_results.json").write_text('{"args": {"vars": {"token_price": 2.5, "inactive_days": 45}}}')
    publish(Settings(data_dir=data_dir), {"html"})
    page = (data_dir / "bi" / "report.html").read_text(encoding="utf-8")
    assert "<td>token_price</td><td>2.50</td>" in page  # from the last build's --var
    # the marts were computed with inactive_days = 30 (their column): the rows win over the build args
    assert "<td>inactive_days</td><td>30</td>" in page
    assert "<td>multi_product_min_days</td><td>5</td>" in page  # dbt_project.yml default
