"""Raw datasets for the dbt tests, written in the extractor's layout (docs/design.md, "The
raw dataset"): one Delta table per dataset under ``raw/<dataset>``, partitioned by
``_month`` where the dataset has a date; rows are appended as given (no de-duplication).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from extractor.dataset import MONTH_COLUMN, STATE_KEY, DataDir, table_schema
from extractor.rowhash import ROW_HASH_VERSION, row_hashes
from extractor.schemas import DATASETS

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

EXTRACTED_AT = dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)


def row_hash(spec, row: dict) -> str:
    """The extractor's row hash of one row (extractor/rowhash.py)."""
    listed = {name: row.get(name) for name in spec.columns}
    return row_hashes(spec, pa.Table.from_pylist([listed], schema=spec.schema)).to_pylist()[0]


# the commits' metadata says which row hash they hold, as the extractor's do: a data dir
# without it is upgraded (rehashed) on its next locked use
HASHED = CommitProperties(custom_metadata={STATE_KEY: json.dumps({"row_hash": ROW_HASH_VERSION})})


def write_schema_files(raw_dir: Path) -> None:
    """Every dataset's (empty, typed) Delta table, as the extractor guarantees."""
    DataDir(raw_dir.parent).ensure_tables()


def write_raw(raw_dir: Path, dataset: str, rows: list[dict], *, source: str = "test", extracted_at=EXTRACTED_AT, part: str = "part") -> None:
    """Write rows (dicts with canonical column names) into the dataset's Delta table: like a
    file ``part`` per month (or per dataset without a date), the default part replacing the
    months (or the dataset) it writes, another part adding to them."""
    spec = DATASETS[dataset]
    dd = DataDir(raw_dir.parent)
    dd.ensure_tables()
    full = []
    for row in rows:
        unknown = set(row) - set(spec.columns)
        assert not unknown, f"{dataset}: unknown columns {unknown}"
        record = {name: row.get(name) for name in spec.columns}
        record.update(_source=source, _extracted_at=extracted_at, _row_hash=row_hash(spec, row))
        if spec.date_column:
            record[MONTH_COLUMN] = record[spec.date_column].strftime("%Y-%m")
        full.append(record)
    schema = table_schema(spec, {f.name for f in pa.schema(dd.table(dataset).schema().to_arrow())}
                          - set(table_schema(spec).names))
    table = pa.Table.from_pylist(full, schema=schema)
    if part != "part":
        write_deltalake(dd.table_uri(dataset), table, mode="append", commit_properties=HASHED)
    elif spec.date_column:
        months = ", ".join(sorted({f"'{r[MONTH_COLUMN]}'" for r in full})) or "''"
        write_deltalake(dd.table_uri(dataset), table, mode="overwrite", predicate=f"{MONTH_COLUMN} IN ({months})",
                        commit_properties=HASHED)
    else:
        write_deltalake(dd.table_uri(dataset), table, mode="overwrite", commit_properties=HASHED)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def write_tiny_dataset(raw_dir: Path, *, tokenflex: bool = True, metadata: bool = True) -> None:
    """A hand-made dataset small enough to reason about: two teams, a collection user, a
    standalone user, a flex user seen in Premium and Token Flex, a Token Flex-only user,
    an assigned user who never used anything, and a metadata file."""
    write_schema_files(raw_dir)
    ident_alice = dict(user_id="U1", hashed_user_id="h1", email="Alice@Example.com ", full_name="Alice Archer", user_name="alice")
    ident_bob = dict(user_id="U2", hashed_user_id="h2", email="bob@example.com", full_name="Bob Baker", user_name="bob")
    ident_carol = dict(user_id="U3", hashed_user_id="h3", email="carol@example.com", full_name="Carol Cole", user_name="carol")
    api = []
    for day in ("2026-10-01", "2026-10-02", "2026-11-03"):
        api.append(dict(usage_date=d(day), usage_month=d(day).replace(day=1), context_id="100", team_name="Design",
                        product_name="AEC Collection", child_product_name="Revit", product_line_code="AECCOL",
                        feature_id="RVT", version="2026", source="sus", **ident_alice))
    api.append(dict(usage_date=d("2026-11-03"), usage_month=d("2026-11-01"), context_id="100", team_name="Design",
                    product_name="AutoCAD", child_product_name="AutoCAD", product_line_code="ACD", feature_id="ACD",
                    version="2025", source="sus", **ident_bob))
    # flex usage also present in Token Flex (carol's email is her Token Flex user name)
    api.append(dict(usage_date=d("2026-11-04"), usage_month=d("2026-11-01"), context_id="200", team_name="Build",
                    product_name="Civil 3D", child_product_name="Civil 3D", product_line_code="CIV3D",
                    feature_id="CIV3D", version="2026", source="flex", tokens=10.0, **ident_carol))
    write_raw(raw_dir, "premium_usage", api, source="insights/v1/usage-queries context=100")
    files = [
        # the same AutoCAD day of bob from a hand-downloaded file: must not count twice
        dict(usage_date=d("2026-11-03"), team_name="Design", email="BOB@example.com", user_id="U2",
             product_name="AutoCAD", offering_name="AutoCAD", version="2025", usage_type="sus"),
        # alice used Civil 3D through the collection (offering named by an alias)
        dict(usage_date=d("2026-11-05"), team_name="Design", user_id="U1", email="alice@example.com",
             product_name="Civil 3D", offering_name="Architecture Engineering & Construction Collection",
             version="2026", usage_type="sus"),
        # masked personal data: only the hashed id is left
        dict(usage_date=d("2026-11-06"), team_name="Design", hashed_user_id="h9", email="*****", first_name="*****",
             product_name="Revit", offering_name="Revit", version="2025", usage_type="sus"),
    ]
    write_raw(raw_dir, "premium_usage_files", files, source="usage-report.csv")
    users = [
        dict(team_name="Design", team_id="T1", offering_name="AEC Collection", assigned_date=d("2026-01-10"), **ident_alice),
        dict(team_name="Design", team_id="T1", offering_name="AutoCAD", assigned_date=d("2026-02-01"), **ident_bob),
        dict(team_name="Build", team_id="T2", offering_name="Flex", **ident_carol),
        dict(team_name="Build", team_id="T2", offering_name="Autodesk AEC Collection", user_id="U4",
             email="dave@example.com", full_name="Dave Dunn", assigned_date=d("2026-03-01")),
    ]
    write_raw(raw_dir, "premium_users", users, source="users.csv")
    subs = [
        dict(team_name="Design", team_id="T1", subscription_id="S1", offering_name="AEC Collection", seat_quantity=3, subscription_status="Active"),
        dict(team_name="Design", team_id="T1", subscription_id="S2", offering_name="AutoCAD", seat_quantity=2, subscription_status="Active"),
        dict(team_name="Design", team_id="T1", subscription_id="S3", offering_name="AutoCAD", seat_quantity=5, subscription_status="Expired"),
        dict(team_name="Build", team_id="T2", subscription_id="S4", offering_name="Architecture Engineering & Construction Collection", seat_quantity=1, subscription_status="Active"),
    ]
    write_raw(raw_dir, "premium_subscriptions", subs, source="subscriptions.csv")
    write_raw(raw_dir, "premium_teams", [dict(context_id="100", team_name="Design"), dict(context_id="200", team_name="Build")])
    if tokenflex:
        tf = [
            dict(contract_number="C1", usage_date=d("2026-11-04"), usage_month=d("2026-11-01"), contract_year=1,
                 usage_category="DESKTOP_PRODUCT", product_line_code="CIV3D", product_name="Civil 3D",
                 product_version="2026", user_name="Carol@Example.com", tokens_consumed=12.0, charged_item_id="A1"),
            dict(contract_number="C1", usage_date=d("2026-11-04"), usage_month=d("2026-11-01"), contract_year=1,
                 usage_category="DESKTOP_PRODUCT", product_line_code="ACD", product_name="AutoCAD",
                 product_version="2026", user_name="ntuser7", tokens_consumed=7.0, charged_item_id="A2"),
            dict(contract_number="C1", usage_date=d("2026-11-07"), usage_month=d("2026-11-01"), contract_year=1,
                 usage_category="MANUAL_ADJUSTMENT", tokens_consumed=-50.0, charged_item_id="A3"),
        ]
        write_raw(raw_dir, "tokenflex_usage", tf, source="tokenflex export C1")
        write_raw(raw_dir, "tokenflex_contracts", [dict(
            contract_number="C1", contract_name="Main", contract_start_date=d("2026-01-01"), contract_end_date=d("2028-12-31"),
            is_active=True, multiyear_provisioned_tokens=30000.0, contract_year=1, year_start_date=d("2026-01-01"),
            year_end_date=d("2026-12-31"), provisioned_tokens=10000.0, consumed_tokens=19.0, remaining_tokens=9981.0)])
        write_raw(raw_dir, "tokenflex_enrichment", [dict(contract_number="C1", custom_field="customField1", category_name="GEO")])
    if metadata:
        write_raw(raw_dir, "user_metadata", [
            dict(email="alice@example.com", geo="EMEA", country="France", city="Paris", department="Architecture",
                 cost_center="CC1", project="Tower; Bridge;", skill_level="Expert"),
            dict(email="bob@example.com", geo="AMER", country="USA", city="Boston", department="Drafting",
                 cost_center="CC2", project="Tower", skill_level="Novice"),
        ], source="metadata.xlsx")


#: SandboxData attribute -> raw dataset it lands in (as `aps-usage extract` would write it)
SANDBOX_TABLES = {
    "teams": "premium_teams",
    "usage": "premium_usage",
    "users": "premium_users",
    "subscriptions": "premium_subscriptions",
    "tokenflex_usage": "tokenflex_usage",
    "contracts": "tokenflex_contracts",
    "enrichment": "tokenflex_enrichment",
    "metadata": "user_metadata",
}


def write_sandbox_dataset(data_dir: Path, data, *, skip: tuple[str, ...] = ()) -> None:
    """Write a ``extractor.sandbox.data.generate(...)`` result into data_dir/raw via DataDir."""
    from extractor.dataset import DataDir

    dd = DataDir(data_dir)
    with dd.lock("test data"):
        with dd.transaction() as tx:
            for attribute, dataset in SANDBOX_TABLES.items():
                if dataset in skip:
                    continue
                table = getattr(data, attribute)
                keep = [c for c in table.column_names if c in DATASETS[dataset].columns]
                tx.write(dataset, table.select(keep), source=f"sandbox {attribute}")
    dd.ensure_schema_files()


def warehouse_query(data_dir: Path, sql: str) -> list[tuple]:
    """Run one query on <data_dir>/warehouse.duckdb (read-only) and fetch it fully."""
    import duckdb

    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def mart_tables(data_dir: Path) -> list[str]:
    rows = warehouse_query(
        data_dir,
        "select table_name from information_schema.tables where table_schema = 'marts' order by 1",
    )
    return [r[0] for r in rows]
