"""The BI model both dashboards are generated from: tables, columns, keys, measures and pages.

Nothing here is written per mart: tables and column types come from the published Parquet
files, descriptions from dbt's ``manifest.json`` (the ``description:`` of each model and
column in the dbt project's yml), relationships from the shared column names of
docs/use-cases.md, and the pages from the report's use-case list (``charts.CHARTS``). A new
mart or column reaches both dashboards on the next ``publish``; a new use-case page needs
one entry in ``charts.CHARTS``.

The only hand-written part is :data:`MEASURES`: the numbers an admin reads first. Each one
names the columns it needs and is left out (with its cards) when a mart lacks them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .charts import CHARTS

log = logging.getLogger("aps_usage")

#: conformed columns that every table relates on, and the table holding one row per value
#: (generated as a distinct list of the values when no such table exists)
DIMENSION_KEYS = {
    "user_key": "dim_users",
    "product_name": "dim_products",
    "team_name": "Team",
    "department": "Department",
    "cost_center": "Cost center",
    "geo": "Geo",
}
#: the slicers of every page, in this order (a page shows those its table relates to)
SLICER_KEYS = ("team_name", "department", "cost_center", "geo")
DATE_TABLE = "Date"
#: date columns related to the date table, first one a table has wins
DATE_KEYS = ("usage_date", "usage_month")
#: bar chart category of a page: the first of these the table has
CATEGORY_COLUMNS = ("department", "team_name", "offering_name", "product_name", "collection_name", "cost_center",
                    "project", "contract_number")
#: columns left out of a page's detail table (run bookkeeping)
DETAIL_SKIP = ("extracted_at", "as_of_date")
DETAIL_MAX_COLUMNS = 12
#: tables that are not use cases (dbt folder marts/core): in the model, no page of their own
CORE_PREFIXES = ("dim_", "fct_")


@dataclass(frozen=True)
class Measure:
    table: str
    name: str
    dax: str           # {t} = the quoted table name
    format: str
    needs: tuple[str, ...] = ()
    description: str = ""
    headline: bool = False  # shown on the Overview page

    def expression(self) -> str:
        return self.dax.format(t=quote_dax_table(self.table))


COUNT, MONEY, WHOLE, PCT = "#,0", "#,0.00", "#,0", "0.0%"

MEASURES = (
    Measure("inactive_users", "Inactive users", "COUNTROWS({t})", COUNT, ("user_key",),
            "Users with no use of any product in the trailing inactive_days.", True),
    Measure("inactive_users", "Inactive users holding a seat",
            "CALCULATE(COUNTROWS({t}), {t}[is_assigned] = TRUE())", COUNT, ("is_assigned",),
            "Inactive users with an assigned seat: seats to reclaim.", True),
    Measure("license_utilization", "Seats purchased", "SUM({t}[seats_purchased])", WHOLE, ("seats_purchased",),
            "Seats bought (Subscriptions report).", True),
    Measure("license_utilization", "Seats assigned", "SUM({t}[seats_assigned])", WHOLE, ("seats_assigned",),
            "Seats assigned to a user (Users report).", True),
    Measure("license_utilization", "Seats in use", "SUM({t}[seats_in_use])", WHOLE, ("seats_in_use",),
            "Assigned seats whose user used the offering in the trailing inactive_days.", True),
    Measure("license_utilization", "Seats unassigned", "SUM({t}[seats_unassigned])", WHOLE, ("seats_unassigned",)),
    Measure("license_utilization", "Seat utilization", "DIVIDE(SUM({t}[seats_in_use]), SUM({t}[seats_purchased]))",
            PCT, ("seats_in_use", "seats_purchased"), "Seats in use / seats purchased."),
    Measure("license_utilization_by_org", "Seats assigned (by org)", "SUM({t}[seats_assigned])", WHOLE,
            ("seats_assigned",)),
    Measure("license_utilization_by_org", "Seats in use (by org)", "SUM({t}[seats_in_use])", WHOLE, ("seats_in_use",)),
    Measure("flex_candidates", "Flex candidates", "DISTINCTCOUNT({t}[user_key])", COUNT, ("user_key",)),
    Measure("flex_candidates", "Flex candidates saving per year", "SUM({t}[saving_yearly])", MONEY,
            ("saving_yearly",), "Yearly saving if the light subscription users moved to Flex.", True),
    Measure("low_usage_users", "Low-usage user-months", "COUNTROWS({t})", COUNT, ()),
    Measure("low_usage_users", "Low-usage users", "DISTINCTCOUNT({t}[user_key])", COUNT, ("user_key",)),
    Measure("flex_overuse", "Flex overuse users", "DISTINCTCOUNT({t}[user_key])", COUNT, ("user_key",)),
    Measure("flex_overuse", "Flex excess cost", "SUM({t}[excess_cost])", MONEY, ("excess_cost",),
            "Token cost above what a subscription would have cost.", True),
    Measure("flex_multi_product_daily", "Multi-product Flex users", "DISTINCTCOUNT({t}[user_key])", COUNT, ("user_key",)),
    Measure("flex_multi_product_daily", "Multi-product days", "SUM({t}[multi_product_days])", WHOLE,
            ("multi_product_days",)),
    Measure("single_product_collection_users", "Collection users to right-size", "DISTINCTCOUNT({t}[user_key])",
            COUNT, ("user_key",)),
    Measure("single_product_collection_users", "Collection right-sizing saving per year", "SUM({t}[saving_yearly])",
            MONEY, ("saving_yearly",), "Yearly saving if each listed user held only the product used.", True),
    Measure("collection_candidates", "Collection candidates", "DISTINCTCOUNT({t}[user_key])", COUNT, ("user_key",)),
    Measure("collection_candidates", "Collection candidates saving per year", "SUM({t}[saving_yearly])", MONEY,
            ("saving_yearly",), "Yearly saving if the listed users moved to one collection.", True),
    Measure("project_version_drift", "Project-product pairs with drift",
            "COUNTROWS(SUMMARIZE({t}, {t}[project], {t}[product_name]))", COUNT, ("project", "product_name")),
    Measure("usage_by_cost_center", "Usage days", "SUM({t}[usage_days])", WHOLE, ("usage_days",)),
    Measure("usage_by_cost_center", "Tokens used", "SUM({t}[tokens])", WHOLE, ("tokens",)),
    Measure("flex_usage_by_cost_center", "Flex cost", "SUM({t}[token_cost])", MONEY, ("token_cost",),
            "Estimated cost of the Flex tokens used (tokens x var token_price).", True),
    Measure("flex_usage_by_cost_center", "Flex tokens", "SUM({t}[tokens])", WHOLE, ("tokens",)),
    Measure("token_balance", "Tokens remaining", "SUM({t}[remaining_tokens])", WHOLE, ("remaining_tokens",),
            "Tokens left in the current contract years.", True),
    Measure("token_balance", "Tokens provisioned", "SUM({t}[provisioned_tokens])", WHOLE, ("provisioned_tokens",)),
    Measure("token_balance", "Tokens consumed", "SUM({t}[consumed_tokens])", WHOLE, ("consumed_tokens",)),
    Measure("unmapped_users", "Unmapped users", "COUNTROWS({t})", COUNT, ()),
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "string" | "int64" | "double" | "boolean" | "date" | "datetime"
    description: str = ""


@dataclass
class Table:
    name: str
    columns: list[Column]
    description: str = ""
    generated_from: str | None = None  # a dimension made of the distinct values of this key column
    measures: list[Measure] = field(default_factory=list)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def is_core(self) -> bool:
        return self.name.startswith(CORE_PREFIXES) or self.generated_from is not None


@dataclass(frozen=True)
class Relationship:
    from_table: str
    from_column: str
    to_table: str
    to_column: str


@dataclass(frozen=True)
class Visual:
    kind: str  # "card" | "bar" | "table" | "slicer"
    table: str
    fields: tuple[str, ...]  # column names, or measure names for cards / the bar's value
    measures: tuple[str, ...] = ()
    title: str = ""


@dataclass
class Page:
    key: str
    title: str
    question: str
    table: str | None
    visuals: list[Visual]


@dataclass
class BIModel:
    tables: list[Table]
    relationships: list[Relationship]
    pages: list[Page]

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)

    def measure(self, name: str) -> Measure | None:
        return next((m for t in self.tables for m in t.measures if m.name == name), None)


def quote_dax_table(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def stable_id(*parts: str, length: int = 20) -> str:
    """A name that is the same on every publish (Power BI names pages/visuals by id; diffs stay small)."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


def arrow_kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    return "string"


def dbt_descriptions(manifest_path: Path) -> dict[str, tuple[str, dict[str, str]]]:
    """mart name -> (model description, {column: description}) from dbt's manifest.json."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.debug("no dbt manifest at %s: the BI model has no descriptions", manifest_path)
        return {}
    out = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") == "model" and node.get("schema") == "marts":
            columns = {name: (col.get("description") or "").strip() for name, col in node.get("columns", {}).items()}
            out[node.get("alias") or node["name"]] = ((node.get("description") or "").strip(), columns)
    return out


def plain_text(markdown: str) -> str:
    """dbt descriptions are Markdown; the BI tools show plain text."""
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", markdown)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def build_model(marts_dir: Path, marts: list[str], manifest_path: Path) -> BIModel:
    """The model of the published Parquet marts (``marts_dir/<mart>.parquet``)."""
    docs = dbt_descriptions(manifest_path)
    tables = []
    for name in sorted(marts):
        schema = pq.read_schema(marts_dir / f"{name}.parquet")
        description, column_docs = docs.get(name, ("", {}))
        columns = [Column(f.name, arrow_kind(f.type), plain_text(column_docs.get(f.name, ""))) for f in schema]
        table = Table(name, columns, plain_text(description))
        present = {c.name for c in columns}
        table.measures = [m for m in MEASURES if m.table == name and set(m.needs) <= present]
        table.measures.append(Measure(name, f"{name} rows", "COUNTROWS({t})", COUNT, (),
                                      f"Rows of {name}."))
        tables.append(table)

    by_name = {t.name: t for t in tables}
    relationships: list[Relationship] = []
    for key, dim_name in DIMENSION_KEYS.items():
        if dim_name in by_name and not _unique(marts_dir, dim_name, key):
            # Power BI refuses a many-to-one relationship onto repeated values: use a generated list
            log.warning("%s.%s is not unique: the Power BI model relates %s through a generated list",
                        dim_name, key, key)
            dim_name = key.replace("_", " ").capitalize()
        holders = [t for t in tables if t.column(key) and t.name != dim_name]
        if not holders:
            continue
        if dim_name not in by_name:  # a generated list of the key's values
            source = holders[0].column(key)
            dim = Table(dim_name, [Column(key, source.kind, source.description)],
                        f"Every {key.replace('_', ' ')} seen in any table (generated: one row per value).",
                        generated_from=key)
            tables.append(dim)
            by_name[dim_name] = dim
        for table in holders:
            if not table.name.startswith("dim_"):  # dimensions never relate to each other: no ambiguous paths
                relationships.append(Relationship(table.name, key, dim_name, key))
    date_users = [(t, next(k for k in DATE_KEYS if t.column(k))) for t in tables
                  if any(t.column(k) for k in DATE_KEYS)]
    if date_users:
        tables.append(Table(DATE_TABLE, [Column("Date", "date", "One row per day (CALENDARAUTO).")],
                            "Calendar: one row per day over every date in the model.", generated_from="Date"))
        relationships += [Relationship(t.name, k, DATE_TABLE, "Date") for t, k in date_users]
    return BIModel(tables=tables, relationships=relationships, pages=_pages(by_name, relationships))


def _unique(marts_dir: Path, table: str, column: str) -> bool:
    values = pq.read_table(marts_dir / f"{table}.parquet", columns=[column]).column(column)
    return values.null_count == 0 and pc.count_distinct(values).as_py() == len(values)


def _slicers(table: Table, relationships: list[Relationship]) -> list[Visual]:
    dimension_of = {r.from_column: r.to_table for r in relationships if r.from_table == table.name}
    return [Visual("slicer", dimension_of[key], (key,), title=key.replace("_", " "))
            for key in SLICER_KEYS if key in dimension_of]


def _page_visuals(table: Table, relationships: list[Relationship]) -> list[Visual]:
    visuals = [Visual("card", table.name, (), (m.name,), m.name) for m in table.measures[:4]]
    category = next((c for c in CATEGORY_COLUMNS if table.column(c)), None)
    if category and table.measures:
        main = table.measures[0].name
        visuals.append(Visual("bar", table.name, (category,), (main,), f"{main} by {category.replace('_', ' ')}"))
    detail = [c.name for c in table.columns if c.name not in DETAIL_SKIP][:DETAIL_MAX_COLUMNS]
    visuals.append(Visual("table", table.name, tuple(detail), title=f"{table.name} (detail)"))
    return visuals + _slicers(table, relationships)


def _pages(tables: dict[str, Table], relationships: list[Relationship]) -> list[Page]:
    headline = [m for t in tables.values() for m in t.measures if m.headline]
    overview = Page("overview", "Overview", "The headline numbers of every use case.", None,
                    [Visual("card", m.table, (), (m.name,), m.name) for m in headline])
    seats = tables.get("license_utilization")
    if seats and seats.column("offering_name") and seats.measures:
        overview.visuals.append(Visual("bar", seats.name, ("offering_name",), tuple(m.name for m in seats.measures[:3]),
                                       "Seats by offering"))
    team = next((r.to_table for r in relationships if r.from_column == "team_name"), None)
    if team:
        overview.visuals.append(Visual("slicer", team, ("team_name",), title="team name"))
    pages = [overview]
    covered = set()
    for spec in CHARTS:
        table = tables.get(spec.mart)
        if table is None or spec.mart in covered:
            continue
        covered.add(spec.mart)
        pages.append(Page(spec.key, spec.title.split(":")[0], spec.question, table.name,
                          _page_visuals(table, relationships)))
    for table in tables.values():  # a mart without a use-case chart still gets its page
        if table.name not in covered and not table.is_core:
            pages.append(Page(table.name, table.name.replace("_", " ").capitalize(), table.description.split("\n")[0],
                              table.name, _page_visuals(table, relationships)))
    return pages
