"""The report as PBIR files (Power BI's folder format of a report, one JSON file per page and visual).

Layout::

    definition.pbir                          -> the semantic model folder (byPath)
    definition/version.json, report.json
    definition/pages/pages.json              page order, Overview first
    definition/pages/<page>/page.json
    definition/pages/<page>/visuals/<visual>/visual.json

Each file names its JSON schema in ``$schema``; the versions below are the ones the tests
validate against (tests/bi/schemas). Page and visual folder names are hashes of the page
key and the visual's place, so a publish rewrites the same names.
"""

from __future__ import annotations

from ..semantic import BIModel, Page, Visual, stable_id

SCHEMA = "https://developer.microsoft.com/json-schemas/fabric/item/report"
SCHEMAS = {
    "pbir": f"{SCHEMA}/definitionProperties/2.0.0/schema.json",
    "version": f"{SCHEMA}/definition/versionMetadata/1.0.0/schema.json",
    "report": f"{SCHEMA}/definition/report/3.0.0/schema.json",
    "pages": f"{SCHEMA}/definition/pagesMetadata/1.0.0/schema.json",
    "page": f"{SCHEMA}/definition/page/2.0.0/schema.json",
    "visual": f"{SCHEMA}/definition/visualContainer/2.4.0/schema.json",
}
PAGE_WIDTH, PAGE_HEIGHT = 1280, 720
MARGIN, GAP = 16, 12
VISUAL_TYPES = {"card": "card", "bar": "clusteredBarChart", "table": "tableEx", "slicer": "slicer"}


def _literal(value: str) -> dict:
    return {"expr": {"Literal": {"Value": value}}}


def _text(value: str) -> dict:
    return _literal("'" + value.replace("'", "''") + "'")


def _field(table: str, prop: str, measure: bool) -> dict:
    kind = "Measure" if measure else "Column"
    return {kind: {"Expression": {"SourceRef": {"Entity": table}}, "Property": prop}}


def _projection(table: str, prop: str, measure: bool) -> dict:
    return {"field": _field(table, prop, measure), "queryRef": f"{table}.{prop}", "nativeQueryRef": prop}


def _query_state(visual: Visual) -> dict:
    columns = [_projection(visual.table, c, False) for c in visual.fields]
    measures = [_projection(visual.table, m, True) for m in visual.measures]
    if visual.kind == "bar":
        return {"Category": {"projections": columns}, "Y": {"projections": measures}}
    return {"Values": {"projections": columns + measures}}


def _layout(page: Page) -> list[tuple[Visual, dict]]:
    """Slicers in a column on the left, then a row of cards, the bar chart and the detail table."""
    slicers = [v for v in page.visuals if v.kind == "slicer"]
    cards = [v for v in page.visuals if v.kind == "card"]
    others = [v for v in page.visuals if v.kind in ("bar", "table")]
    placed = []
    left = MARGIN + (200 + GAP if slicers else 0)
    for i, visual in enumerate(slicers):
        placed.append((visual, dict(x=MARGIN, y=MARGIN + i * (150 + GAP), width=200, height=150)))
    width = PAGE_WIDTH - left - MARGIN
    y = MARGIN
    per_row = 4
    for i, visual in enumerate(cards):
        card_w = (width - GAP * (per_row - 1)) / per_row
        placed.append((visual, dict(x=left + (i % per_row) * (card_w + GAP), y=y + (i // per_row) * (110 + GAP),
                                    width=card_w, height=110)))
    if cards:
        y += ((len(cards) + per_row - 1) // per_row) * (110 + GAP)
    if others:
        height = (PAGE_HEIGHT - y - MARGIN - GAP * (len(others) - 1)) / len(others)
        for i, visual in enumerate(others):
            placed.append((visual, dict(x=left, y=y + i * (height + GAP), width=width, height=max(height, 120))))
    return placed


def visual_json(page: Page, index: int, visual: Visual, box: dict) -> tuple[str, dict]:
    name = stable_id(page.key, str(index), visual.kind, visual.table, *visual.fields, *visual.measures)
    position = {k: round(v, 2) for k, v in box.items()}
    document = {
        "$schema": SCHEMAS["visual"],
        "name": name,
        "position": {**position, "z": index * 1000, "tabOrder": index * 1000},
        "visual": {
            "visualType": VISUAL_TYPES[visual.kind],
            "query": {"queryState": _query_state(visual)},
            "visualContainerObjects": {"title": [{"properties": {"show": _literal("true"),
                                                                  "text": _text(visual.title)}}]},
            "drillFilterOtherVisuals": True,
        },
    }
    return name, document


def report_files(model: BIModel, semantic_model_folder: str) -> dict[str, dict]:
    """Relative path (under the .Report folder) -> JSON document of every PBIR file."""
    files: dict[str, dict] = {
        "definition.pbir": {"$schema": SCHEMAS["pbir"], "version": "4.0",
                            "datasetReference": {"byPath": {"path": f"../{semantic_model_folder}"}}},
        "definition/version.json": {"$schema": SCHEMAS["version"], "version": "2.0.0"},
        "definition/report.json": {
            "$schema": SCHEMAS["report"],
            "themeCollection": {},
            "settings": {"useStylableVisualContainerHeader": True, "exportDataMode": "AllowSummarized",
                         "defaultDrillFilterOtherVisuals": True},
        },
    }
    order = []
    for page in model.pages:
        page_name = stable_id("page", page.key)
        order.append(page_name)
        files[f"definition/pages/{page_name}/page.json"] = {
            "$schema": SCHEMAS["page"], "name": page_name, "displayName": page.title,
            "displayOption": "FitToPage", "height": PAGE_HEIGHT, "width": PAGE_WIDTH,
        }
        for index, (visual, box) in enumerate(_layout(page)):
            name, document = visual_json(page, index, visual, box)
            files[f"definition/pages/{page_name}/visuals/{name}/visual.json"] = document
    files["definition/pages/pages.json"] = {"$schema": SCHEMAS["pages"], "pageOrder": order,
                                            "activePageName": order[0]}
    return files
