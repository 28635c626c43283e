"""Tableau: a packaged workbook ``bi/aps-usage.twbx`` = the ``.hyper`` extract + a generated ``.twb``.

The workbook has one data source per table of the extract (``marts.<table>``), a sheet
and a dashboard per use-case page of :mod:`..semantic`, and an Overview dashboard of the
headline numbers. Each dashboard shows the page's filters (team, department, cost
center, geo: those its table has); sheets carry the mart's dbt description as caption.

Tableau computes the measures itself, so each Power BI measure that is a plain aggregate
(``SUM``, ``DISTINCTCOUNT``, ``COUNTROWS``) becomes the same aggregation of the column
here; the others (ratios, filtered counts) are Power BI only.

The ``.twb`` is checked against Tableau's published workbook XSD by the tests; whether
Tableau Desktop lays it out as intended is the part to look at once (docs/bi.md).
"""

from __future__ import annotations

import re
import uuid
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from ..files import atomic_path
from ..semantic import BIModel, Measure, Page, Table, quote_dax_table, stable_id

WORKBOOK_VERSION = "18.1"
SOURCE_BUILD = "2026.1.0 (20261.26.0211.1127)"
USER_NS = "http://www.tableausoftware.com/xml/user"
HYPER_IN_PACKAGE = "Data/Extracts/aps-usage.hyper"
TWB_NAME = "aps-usage.twb"
ROWS_FIELD = "[Number of Rows]"
#: Tableau datatype per column kind
DATATYPES = {"string": "string", "int64": "integer", "double": "real", "boolean": "boolean", "date": "date",
             "datetime": "datetime"}
#: a fixed timestamp for the zip entries: two publishes give the same bytes
ZIP_TIME = (2026, 1, 1, 0, 0, 0)
FILTER_COLUMNS = ("team_name", "department", "cost_center", "geo")
_NAMESPACE = uuid.UUID("0b9d6c1e-53a4-4d1f-8f65-3c2b7e9a4d10")


def datasource_name(table: str) -> str:
    return f"federated.{stable_id('datasource', table, length=28)}"


def _field(table: str, instance: str) -> str:
    return f"[{datasource_name(table)}].[{instance}]"


def aggregate_of(measure: Measure) -> tuple[str, str] | None:
    """(Tableau derivation prefix, column) of a Power BI measure that is a plain aggregate, else None."""
    t = re.escape(quote_dax_table(measure.table))
    dax = measure.expression()
    if m := re.fullmatch(rf"SUM\({t}\[(\w+)\]\)", dax):
        return "sum", m.group(1)
    if m := re.fullmatch(rf"DISTINCTCOUNT\({t}\[(\w+)\]\)", dax):
        return "ctd", m.group(1)
    if re.fullmatch(rf"COUNTROWS\({t}\)", dax):
        return "sum", ROWS_FIELD[1:-1]
    return None


def _instance(column: str, derivation: str, kind: str) -> str:
    """Tableau's column-instance name, e.g. ``[none:team_name:nk]`` or ``[sum:seats_purchased:qk]``."""
    return f"{derivation}:{column}:{kind}"


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = text
    return element


def _formatted(parent: ET.Element, tag: str, text: str) -> None:
    holder = ET.SubElement(parent, tag)
    formatted = ET.SubElement(holder, "formatted-text")
    _text(formatted, "run", text)


def _datasource(parent: ET.Element, table: Table) -> None:
    name = datasource_name(table.name)
    connection_name = f"hyper.{stable_id('connection', table.name, length=28)}"
    ds = ET.SubElement(parent, "datasource", {"caption": table.name, "inline": "true", "name": name,
                                               "version": WORKBOOK_VERSION})
    federated = ET.SubElement(ds, "connection", {"class": "federated"})
    named = ET.SubElement(ET.SubElement(federated, "named-connections"), "named-connection",
                          {"caption": "aps-usage", "name": connection_name})
    ET.SubElement(named, "connection", {"authentication": "auth-none", "author-locale": "en_US", "class": "hyper",
                                        "dbname": HYPER_IN_PACKAGE, "default-settings": "yes", "schema": "marts",
                                        "sslmode": "", "tablename": table.name,
                                        "username": "tableau_internal_user"})
    ET.SubElement(federated, "relation", {"connection": connection_name, "name": table.name,
                                          "table": f"[marts].[{table.name}]", "type": "table"})
    records = ET.SubElement(federated, "metadata-records")
    for ordinal, column in enumerate(table.columns):
        record = ET.SubElement(records, "metadata-record", {"class": "column"})
        _text(record, "remote-name", column.name)
        _text(record, "local-name", f"[{column.name}]")
        _text(record, "parent-name", f"[{table.name}]")
        _text(record, "ordinal", str(ordinal))
        _text(record, "local-type", DATATYPES[column.kind])
    rows = ET.SubElement(ds, "column", {"caption": "Number of Rows", "datatype": "integer", "name": ROWS_FIELD,
                                        "role": "measure", "type": "quantitative"})
    ET.SubElement(rows, "calculation", {"class": "tableau", "formula": "1"})
    for column in table.columns:
        attrs = _column_attrs(column.name, column.kind)
        element = ET.SubElement(ds, "column", attrs)
        if column.description:
            _formatted(element, "desc", column.description)


def _column_attrs(name: str, kind: str) -> dict[str, str]:
    measure = kind in ("int64", "double")
    return {"datatype": DATATYPES[kind], "name": f"[{name}]", "role": "measure" if measure else "dimension",
            "type": "quantitative" if measure else ("ordinal" if kind in ("date", "datetime") else "nominal")}


def _worksheet(parent: ET.Element, name: str, table: Table, rows: list[tuple[str, str, str]],
               cols: list[tuple[str, str, str]], caption: str, filters: list[str], mark: str) -> None:
    """rows/cols: (column, derivation, kind) instances on each shelf."""
    sheet = ET.SubElement(parent, "worksheet", {"name": name})
    layout = ET.SubElement(sheet, "layout-options")
    _formatted(layout, "title", name)
    if caption:
        _formatted(layout, "caption", caption)
    view_table = ET.SubElement(sheet, "table")
    view = ET.SubElement(view_table, "view")
    ds_name = datasource_name(table.name)
    ET.SubElement(ET.SubElement(view, "datasources"), "datasource", {"caption": table.name, "name": ds_name})
    deps = ET.SubElement(view, "datasource-dependencies", {"datasource": ds_name})
    used = rows + cols + [(f, "none", "nk") for f in filters]
    for column in sorted({u[0] for u in used}):
        if f"[{column}]" == ROWS_FIELD:
            element = ET.SubElement(deps, "column", {"caption": "Number of Rows", "datatype": "integer",
                                                     "name": ROWS_FIELD, "role": "measure", "type": "quantitative"})
            ET.SubElement(element, "calculation", {"class": "tableau", "formula": "1"})
        else:
            ET.SubElement(deps, "column", _column_attrs(column, table.column(column).kind))
    for column, derivation, kind in sorted(set(used)):
        ET.SubElement(deps, "column-instance", {
            "column": f"[{column}]", "derivation": derivation.capitalize() if derivation != "ctd" else "CountD",
            "name": f"[{_instance(column, derivation, kind)}]", "pivot": "key",
            "type": "nominal" if kind == "nk" else "quantitative"})
    for column in filters:
        instance = _field(table.name, _instance(column, "none", "nk"))
        element = ET.SubElement(view, "filter", {"class": "categorical", "column": instance})
        ET.SubElement(element, "groupfilter", {"function": "level-members", "level": f"[{_instance(column, 'none', 'nk')}]",
                                               f"{{{USER_NS}}}ui-enumeration": "all",
                                               f"{{{USER_NS}}}ui-marker": "enumerate"})
    if filters:
        slices = ET.SubElement(view, "slices")
        for column in filters:
            _text(slices, "column", _field(table.name, _instance(column, "none", "nk")))
    ET.SubElement(view, "aggregation", {"value": "true"})
    ET.SubElement(view_table, "style")
    pane = ET.SubElement(ET.SubElement(view_table, "panes"), "pane")
    ET.SubElement(ET.SubElement(pane, "view"), "breakdown", {"value": "auto"})
    ET.SubElement(pane, "mark", {"class": mark})
    _text(view_table, "rows", " / ".join(_field(table.name, _instance(*r)) for r in rows))
    _text(view_table, "cols", " / ".join(_field(table.name, _instance(*c)) for c in cols))
    _simple_id(sheet, "worksheet", name)


def _measure_instance(measure: Measure) -> tuple[str, str, str] | None:
    agg = aggregate_of(measure)
    return (agg[1], agg[0], "qk") if agg else None


def _dashboard(parent: ET.Element, name: str, sheets: list[str], filters: list[tuple[str, str]]) -> None:
    """Sheets stacked on the left 80%, one filter card per (sheet, field) on the right."""
    dash = ET.SubElement(parent, "dashboard", {"name": name})
    ET.SubElement(dash, "style")
    ET.SubElement(dash, "size", {"maxheight": "800", "maxwidth": "1200", "minheight": "800", "minwidth": "1200"})
    zones = ET.SubElement(dash, "zones")
    root = ET.SubElement(zones, "zone", {"h": "100000", "id": "1", "type-v2": "layout-basic", "w": "100000",
                                         "x": "0", "y": "0"})
    zone_id = 2
    height = 100000 // max(len(sheets), 1)
    for i, sheet in enumerate(sheets):
        ET.SubElement(root, "zone", {"h": str(height), "id": str(zone_id), "name": sheet, "w": "80000",
                                     "x": "0", "y": str(i * height)})
        zone_id += 1
    f_height = 100000 // max(len(filters), 1)
    for i, (sheet, field) in enumerate(filters):
        ET.SubElement(root, "zone", {"h": str(min(f_height, 20000)), "id": str(zone_id), "mode": "checkdropdown",
                                     "name": sheet, "param": field, "type-v2": "filter", "w": "20000",
                                     "x": "80000", "y": str(i * min(f_height, 20000))})
        zone_id += 1
    _simple_id(dash, "dashboard", name)


def _simple_id(parent: ET.Element, *parts: str) -> None:
    ET.SubElement(parent, "simple-id", {"uuid": "{" + str(uuid.uuid5(_NAMESPACE, "/".join(parts))).upper() + "}"})


def _page_sheet(page: Page, table: Table) -> tuple[list, list, str]:
    category = next((v.fields[0] for v in page.visuals if v.kind == "bar"), None)
    measures = [i for i in (_measure_instance(m) for m in table.measures) if i]
    value = measures[0] if measures else (ROWS_FIELD[1:-1], "sum", "qk")
    rows = [(category, "none", "nk")] if category else []
    return rows, [value], "Bar" if category else "Text"


def workbook(model: BIModel) -> ET.Element:
    ET.register_namespace("user", USER_NS)
    root = ET.Element("workbook", {"original-version": WORKBOOK_VERSION, "source-build": SOURCE_BUILD,
                                   "source-platform": "win", "version": WORKBOOK_VERSION})
    ET.SubElement(root, "preferences")
    datasources = ET.SubElement(root, "datasources")
    extract_tables = [t for t in model.tables if t.generated_from is None]
    for table in extract_tables:
        _datasource(datasources, table)
    worksheets = ET.SubElement(root, "worksheets")
    dashboards = []
    overview_sheets: list[str] = []
    for page in model.pages:
        if page.table is None:
            continue
        table = model.table(page.table)
        rows, cols, mark = _page_sheet(page, table)
        filters = [c for c in FILTER_COLUMNS if table.column(c)]
        _worksheet(worksheets, page.title, table, rows, cols, table.description or page.question, filters, mark)
        dashboards.append((page.title, [page.title], [(page.title, _field(table.name, _instance(f, "none", "nk")))
                                                      for f in filters]))
    for page in model.pages:
        if page.table is not None:
            continue
        for visual in page.visuals:
            measure = model.measure(visual.measures[0]) if visual.kind == "card" else None
            instance = _measure_instance(measure) if measure else None
            if instance:
                table = model.table(measure.table)
                sheet = f"Overview: {measure.name}"
                _worksheet(worksheets, sheet, table, [], [instance], measure.description, [], "Text")
                overview_sheets.append(sheet)
    dash_root = ET.SubElement(root, "dashboards")
    names = ["Overview"] + [f"{name} (dashboard)" for name, _, _ in dashboards]
    _dashboard(dash_root, names[0], overview_sheets, [])
    for name, (_, sheets, filters) in zip(names[1:], dashboards):
        _dashboard(dash_root, name, sheets, filters)
    windows = ET.SubElement(root, "windows")  # a tab per dashboard; the sheets stay inside them
    for name in names:
        window = ET.SubElement(windows, "window", {"class": "dashboard", "name": name})
        ET.SubElement(window, "viewpoints")
        ET.SubElement(window, "active", {"id": "-1"})
        _simple_id(window, "window", name)
    explain = ET.SubElement(root, "explain-data", {"enabled-for-viewer": "true",
                                                   "extreme-values-enabled-for-all": "true"})
    ET.SubElement(explain, "explanation-types")
    ET.indent(root)
    return root


def twb_bytes(model: BIModel) -> bytes:
    body = ET.tostring(workbook(model), encoding="unicode")
    return ("<?xml version='1.0' encoding='utf-8' ?>\n" + body + "\n").encode("utf-8")


def write_twbx(model: BIModel, hyper: Path, dest: Path) -> Path:
    """The packaged workbook: the .twb at the root, the extract under Data/Extracts/."""
    with atomic_path(dest) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for arcname, data in ((TWB_NAME, twb_bytes(model)), (HYPER_IN_PACKAGE, hyper.read_bytes())):
                info = zipfile.ZipInfo(arcname, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
    return dest
