"""The Power BI project and the Tableau workbook that `publish` generates, checked offline:
the Microsoft JSON schemas and Tableau's XSD (vendored in tests/bi/schemas), then what a
schema cannot see. Every check also runs on a deliberately broken copy and must name the break."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import bi_checks
import pytest
from bi_fixtures import FAKE_MARTS, make_fake_warehouse, require_all
from click.testing import CliRunner
from lxml import etree

from extractor.cli import cli
from extractor.publish.hyper import hyper_available

PROJECT = "aps-usage"


def publish(data_dir: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["-q", "--data-dir", str(data_dir), "publish", *args], obj=None)
    assert result.exit_code == 0, result.output + repr(result.exception)


def needs_hyper() -> None:
    if not hyper_available():
        if require_all():
            pytest.fail("pantab missing and APS_USAGE_REQUIRE_ALL=1")
        pytest.skip("pantab not installed: no .hyper / .twbx")


def needs_pq_parser() -> None:
    if not bi_checks.pq_parser_installed():
        if require_all() or bi_checks.NODE:
            pytest.fail("node or tests/bi/pq/node_modules missing: run `npm ci --prefix tests/bi/pq` "
                        "(.ci/run does) to check the Power Query expressions")
        pytest.skip("node is not installed: Power Query expressions not parsed")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("dash") / "data"
    make_fake_warehouse(data_dir / "warehouse.duckdb")
    manifest = data_dir / "dbt" / "target" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"nodes": {"model.aps_usage.inactive_users": {
        "resource_type": "model", "name": "inactive_users", "schema": "marts",
        "description": "Users who have not used any product in the trailing `inactive_days` days.\n\n**Grain:** one row per user.",
        "columns": {"user_key": {"description": "The user: Autodesk id when known."}}}}}), encoding="utf-8")
    publish(data_dir)
    return data_dir


def project_of(data_dir: Path) -> Path:
    return data_dir / "bi" / "powerbi"


def copy_project(data_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(project_of(data_dir), tmp_path / "powerbi"))


def definition(project: Path) -> Path:
    return project / f"{PROJECT}.SemanticModel" / "definition"


# ---- Power BI: schemas --------------------------------------------------------------------------

def test_every_pbip_json_file_matches_the_schema_it_names(published):
    project = project_of(published)
    files = bi_checks.pbip_json_files(project)
    names = {p.name for p in files}
    assert {"aps-usage.pbip", "definition.pbism", "definition.pbir", "report.json", "version.json", "pages.json",
            "page.json", "visual.json"} <= names
    assert bi_checks.validate_pbip_json(project) == []
    schemas = {json.loads(p.read_text(encoding="utf-8"))["$schema"] for p in files}
    assert len(schemas) == 8  # every kind of file was validated against its own schema


def test_a_broken_pbip_json_file_fails_its_schema(published, tmp_path):
    project = copy_project(published, tmp_path)
    visual = sorted(project.rglob("visual.json"))[0]
    document = json.loads(visual.read_text(encoding="utf-8"))
    del document["position"]
    visual.write_text(json.dumps(document), encoding="utf-8")
    page = sorted(project.rglob("page.json"))[0]
    page.write_text(page.read_text(encoding="utf-8").replace('"FitToPage"', '"Sideways"'), encoding="utf-8")
    problems = bi_checks.validate_pbip_json(project)
    assert any(str(visual) in p and "'position' is a required property" in p for p in problems), problems
    assert any(str(page) in p and "Sideways" in p for p in problems), problems


def test_a_file_naming_an_unknown_schema_is_reported(published, tmp_path):
    project = copy_project(published, tmp_path)
    pbip = project / "aps-usage.pbip"
    pbip.write_text(pbip.read_text(encoding="utf-8").replace("pbipProperties/1.0.0", "pbipProperties/9.9.9"),
                    encoding="utf-8")
    assert any("not vendored" in p for p in bi_checks.validate_pbip_json(project))


# ---- Power BI: what a schema cannot check --------------------------------------------------------

def test_the_model_has_a_table_per_mart_with_the_parquet_columns_and_types(published):
    assert bi_checks.check_tmdl_matches_parquet(project_of(published), published / "marts") == []
    tables = bi_checks.read_tmdl_tables(definition(project_of(published)))
    assert set(FAKE_MARTS) <= set(tables)
    assert tables["unmapped_users"]["columns"]["usage_days"] == "int64"  # a HUGEINT in DuckDB, published as BIGINT
    assert tables["token_balance"]["columns"]["year_end_date"] == "dateTime"
    assert {"Seats purchased", "Seats assigned", "Seats in use", "Inactive users", "Flex cost",
            "Flex candidates saving per year", "Collection candidates saving per year",
            "Tokens remaining"} <= {m for t in tables.values() for m in t["measures"]}


def test_a_tmdl_table_that_differs_from_its_parquet_file_is_reported(published, tmp_path):
    project = copy_project(published, tmp_path)
    tmdl = definition(project) / "tables" / "flex_overuse.tmdl"
    text = tmdl.read_text(encoding="utf-8")
    tmdl.write_text(text.replace("column excess_cost\n\t\tdataType: double", "column excess_cost\n\t\tdataType: string"),
                    encoding="utf-8")
    (definition(project) / "tables" / "token_balance.tmdl").unlink()
    problems = bi_checks.check_tmdl_matches_parquet(project, published / "marts")
    assert any("flex_overuse.tmdl" in p and "'excess_cost': 'string'" in p for p in problems), problems
    assert any("no table token_balance" in p for p in problems), problems


def test_every_field_a_visual_uses_is_in_the_model(published):
    project = project_of(published)
    used = bi_checks.visual_fields(project / f"{PROJECT}.Report")
    assert {kind for _, kind, _, _ in used} == {"Column", "Measure"}
    assert bi_checks.check_visual_fields(project) == []
    relationships = bi_checks.read_tmdl_relationships(definition(project))
    targets = {(to_table, to_col) for _, _, to_table, to_col in relationships}
    assert {("Team", "team_name"), ("Department", "department"), ("Date", "Date")} <= targets
    assert ("inactive_users", "team_name", "Team", "team_name") in relationships


def test_a_visual_or_relationship_using_a_missing_field_is_reported(published, tmp_path):
    project = copy_project(published, tmp_path)
    visual = next(p for p in sorted(project.rglob("visual.json")) if '"Measure"' in p.read_text(encoding="utf-8"))
    text = visual.read_text(encoding="utf-8")
    measure = re.search(r'"Property": "([^"]+)"', text.split('"Measure"', 1)[1]).group(1)
    visual.write_text(text.replace(f'"Property": "{measure}"', '"Property": "No such measure"'), encoding="utf-8")
    seats = definition(project) / "tables" / "license_utilization.tmdl"
    seats.write_text(seats.read_text(encoding="utf-8").replace("SUM('license_utilization'[seats_in_use])",
                                                               "SUM('license_utilization'[seats_used])", 1),
                     encoding="utf-8")
    rel = definition(project) / "relationships.tmdl"
    rel.write_text(rel.read_text(encoding="utf-8").replace("toColumn: Team.team_name", "toColumn: Team.team"),
                   encoding="utf-8")
    problems = bi_checks.check_visual_fields(project)
    assert any(visual.parent.name in p and "No such measure" in p for p in problems), problems
    assert any("Team.team not in the model" in p for p in problems), problems
    assert any("measure Seats in use uses license_utilization[seats_used]" in p for p in problems), problems


def test_every_power_query_expression_parses(published):
    needs_pq_parser()
    docs = bi_checks.m_expressions(definition(project_of(published)))
    assert {"expression MartsFolder", "expression MartFile", "table inactive_users", "table Team"} <= set(docs)
    assert all("Parquet.Document" in docs[f"table {m}"] for m in FAKE_MARTS)
    assert bi_checks.parse_m(docs) == {name: None for name in docs}


def test_a_power_query_syntax_error_is_reported(published, tmp_path):
    needs_pq_parser()
    project = copy_project(published, tmp_path)
    tmdl = definition(project) / "tables" / "inactive_users.tmdl"
    tmdl.write_text(tmdl.read_text(encoding="utf-8").replace("Source = Parquet.Document(", "Source = Parquet.Document(("),
                    encoding="utf-8")
    results = bi_checks.parse_m(bi_checks.m_expressions(definition(project)))
    assert results["table inactive_users"], results
    assert [name for name, error in results.items() if error] == ["table inactive_users"]


def test_the_descriptions_come_from_the_dbt_docs(published):
    text = (definition(project_of(published)) / "tables" / "inactive_users.tmdl").read_text(encoding="utf-8")
    assert "/// Users who have not used any product in the trailing inactive_days days." in text
    assert "/// Grain: one row per user." in text  # Markdown made plain
    assert "\t/// The user: Autodesk id when known.\n\tcolumn user_key" in text


def test_the_report_has_an_overview_and_a_page_per_use_case(published):
    from extractor.publish.charts import CHARTS

    report = project_of(published) / f"{PROJECT}.Report" / "definition"
    order = json.loads((report / "pages" / "pages.json").read_text(encoding="utf-8"))["pageOrder"]
    pages = [json.loads((report / "pages" / name / "page.json").read_text(encoding="utf-8")) for name in order]
    titles = [p["displayName"] for p in pages]
    assert titles[0] == "Overview"
    for spec in CHARTS:
        assert spec.title in titles
    assert "Unmapped users" in titles  # a mart without a chart still gets a page
    page = pages[titles.index("Inactive users")]
    kinds = sorted(json.loads(p.read_text(encoding="utf-8"))["visual"]["visualType"]
                   for p in (report / "pages" / page["name"] / "visuals").rglob("visual.json"))
    assert {"card", "clusteredBarChart", "tableEx", "slicer"} <= set(kinds)
    slicers = [p for p in (report / "pages" / page["name"] / "visuals").rglob("visual.json")
               if '"slicer"' in p.read_text(encoding="utf-8")]
    assert len(slicers) == 2  # inactive_users (fake) has team_name and department


def test_the_marts_folder_is_the_one_parameter(published):
    text = (definition(project_of(published)) / "expressions.tmdl").read_text(encoding="utf-8")
    assert f'expression MartsFolder = "{(published / "marts").resolve()}" meta [IsParameterQuery=true' in text
    tables = bi_checks.read_tmdl_tables(definition(project_of(published)))
    for name in FAKE_MARTS:
        assert f'MartFile("{name}")' in tables[name]["partition"]


# ---- Tableau -------------------------------------------------------------------------------------

def test_the_twb_matches_tableaus_workbook_schema(published):
    needs_hyper()
    twbx = published / "bi" / "aps-usage.twbx"
    with zipfile.ZipFile(twbx) as archive:
        assert sorted(archive.namelist()) == ["Data/Extracts/aps-usage.hyper", "aps-usage.twb"]
    twb = bi_checks.read_twb(twbx)
    assert bi_checks.validate_twb(twb) == []
    root = etree.fromstring(twb)
    dashboards = [d.get("name") for d in root.iter("dashboard")]
    assert dashboards[0] == "Overview" and len(dashboards) == 1 + len(root.findall("worksheets/worksheet")) - len(
        [w for w in root.iter("worksheet") if w.get("name").startswith("Overview: ")])


def test_a_broken_twb_fails_the_schema(published):
    needs_hyper()
    twb = bi_checks.read_twb(published / "bi" / "aps-usage.twbx")
    broken = twb.replace(b"<mark class=", b"<mark kind=", 1).replace(b" source-build=", b" build=", 1)
    problems = bi_checks.validate_twb(broken)
    assert any("source-build" in p for p in problems), problems
    assert any("mark" in p for p in problems), problems


def test_every_field_a_sheet_uses_is_in_the_hyper_with_the_same_type(published):
    needs_hyper()
    twbx = published / "bi" / "aps-usage.twbx"
    assert bi_checks.check_sheet_fields(bi_checks.read_twb(twbx), published / "bi" / "aps-usage.hyper") == []


def test_a_sheet_field_missing_from_the_hyper_or_of_another_type_is_reported(published):
    needs_hyper()
    twb = bi_checks.read_twb(published / "bi" / "aps-usage.twbx")
    broken = re.sub(rb'(<column datatype=")real(" name="\[excess_cost\]")', rb"\1string\2", twb)
    broken = broken.replace(b'name="[department]"', b'name="[departement]"', 1)
    problems = bi_checks.check_sheet_fields(broken, published / "bi" / "aps-usage.hyper")
    assert any("excess_cost" in p and "string" in p for p in problems), problems
    assert any("departement" in p for p in problems), problems


def test_sheets_carry_the_mart_description_as_caption(published):
    needs_hyper()
    root = etree.fromstring(bi_checks.read_twb(published / "bi" / "aps-usage.twbx"))
    sheet = next(w for w in root.iter("worksheet") if w.get("name") == "Inactive users")
    caption = "".join(sheet.find("layout-options/caption").itertext()).strip()
    assert caption.startswith("Users who have not used any product")


# ---- both ------------------------------------------------------------------------------------------

def test_two_publishes_write_the_same_bytes(published, tmp_path):
    before = {p.relative_to(published): p.read_bytes() for p in project_of(published).rglob("*") if p.is_file()}
    twb_before = bi_checks.read_twb(published / "bi" / "aps-usage.twbx") if hyper_available() else b""
    publish(published, "--formats", "pbip,twbx" if hyper_available() else "pbip")
    after = {p.relative_to(published): p.read_bytes() for p in project_of(published).rglob("*") if p.is_file()}
    assert after == before
    if hyper_available():
        assert bi_checks.read_twb(published / "bi" / "aps-usage.twbx") == twb_before


def test_a_new_mart_and_column_reach_both_dashboards_without_code(tmp_path):
    data_dir = tmp_path / "data"
    marts = dict(FAKE_MARTS)
    marts["seat_costs"] = "SELECT 'Team A' AS team_name, 'AEC Collection' AS offering_name, 3675.5 AS cost_yearly"
    marts["inactive_users"] = FAKE_MARTS["inactive_users"].replace("AS as_of_date", "AS as_of_date, 7 AS seats_held")
    make_fake_warehouse(data_dir / "warehouse.duckdb", marts)
    publish(data_dir, "--formats", "pbip,twbx" if hyper_available() else "pbip")
    project = project_of(data_dir)
    tables = bi_checks.read_tmdl_tables(definition(project))
    assert tables["seat_costs"]["columns"] == {"team_name": "string", "offering_name": "string", "cost_yearly": "double"}
    assert tables["inactive_users"]["columns"]["seats_held"] == "int64"
    assert ("seat_costs", "team_name", "Team", "team_name") in bi_checks.read_tmdl_relationships(definition(project))
    assert bi_checks.validate_pbip_json(project) == [] and bi_checks.check_visual_fields(project) == []
    titles = [json.loads(p.read_text(encoding="utf-8"))["displayName"] for p in project.rglob("page.json")]
    assert "Seat costs" in titles
    if hyper_available():
        twb = bi_checks.read_twb(data_dir / "bi" / "aps-usage.twbx")
        assert b'tablename="seat_costs"' in twb and bi_checks.validate_twb(twb) == []


def test_the_sharepoint_variant_in_the_docs_parses():
    needs_pq_parser()
    text = (Path(__file__).parents[2] / "docs" / "bi.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"```m\n(.*?)```", text, re.S)
    assert "SharePoint.Files" in snippet
    assert bi_checks.parse_m({"MartFile (SharePoint)": snippet}) == {"MartFile (SharePoint)": None}


def test_a_dimension_with_repeated_keys_is_replaced_by_a_generated_list(tmp_path):
    """Power BI refuses a many-to-one relationship onto repeated values: relate through a distinct list."""
    data_dir = tmp_path / "data"
    marts = dict(FAKE_MARTS)
    marts["dim_products"] = "SELECT * FROM (VALUES ('AutoCAD', 1), ('AutoCAD', 2), ('Revit', 3)) t(product_name, n)"
    marts["dim_users"] = "SELECT 'u' || i AS user_key, 'User ' || i AS full_name FROM generate_series(1, 12) t(i)"
    make_fake_warehouse(data_dir / "warehouse.duckdb", marts)
    publish(data_dir, "--formats", "pbip")
    relationships = bi_checks.read_tmdl_relationships(definition(project_of(data_dir)))
    assert ("flex_candidates", "product_name", "Product name", "product_name") in relationships
    assert ("flex_candidates", "user_key", "dim_users", "user_key") in relationships  # unique: used as is
    assert not any(to_table == "dim_products" for _, _, to_table, _ in relationships)
    assert bi_checks.check_visual_fields(project_of(data_dir)) == []
