"""The generated data: deterministic, consistent across tables, and rich enough for every mart."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from extractor import schemas
from extractor.sandbox.data import generate
from extractor.sandbox.products import COLLECTIONS, PRODUCTS

SEED_CSV = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "product_catalog.csv"


@pytest.fixture(scope="module")
def data():
    return generate(seed=11, users=300, days=365, end_date="2026-10-31")


@pytest.fixture(scope="module")
def db(data):
    con = duckdb.connect()
    for name in ("usage", "users", "subscriptions", "tokenflex_usage", "contracts", "people", "metadata"):
        con.register(name, getattr(data, name))
    yield con
    con.close()


def one(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()[0][0]


def test_every_product_and_collection_is_in_the_dbt_seed_with_the_same_codes(data):
    with SEED_CSV.open(newline="") as f:
        seed = {row["product_name"]: row for row in csv.DictReader(f)}
    for p in PRODUCTS:
        assert p.name in seed, p.name
        assert seed[p.name]["feature_code"] == p.code
        assert seed[p.name]["is_collection"] == "false"
        assert float(seed[p.name]["tokens_per_day"]) == p.tokens_per_day
        seed_collections = {c for c in seed[p.name]["collections"].split(";") if c}
        assert seed_collections == {c.name for c in COLLECTIONS if c.code in p.collections}
    for c in COLLECTIONS:
        assert seed[c.name]["feature_code"] == c.code and seed[c.name]["is_collection"] == "true"
    # and every name/code the data actually emits
    names = {p.name for p in PRODUCTS} | {c.name for c in COLLECTIONS}
    codes = {p.code for p in PRODUCTS} | {c.code for c in COLLECTIONS}
    assert set(data.usage["product_name"].unique().to_pylist()) <= names
    assert set(data.usage["child_product_name"].unique().to_pylist()) <= names
    assert set(data.usage["product_line_code"].unique().to_pylist()) <= codes
    assert set(data.tokenflex_usage["product_name"].unique().to_pylist()) <= names


def test_usage_columns_match_the_raw_schema_types(data):
    for name, type_ in schemas.PREMIUM_USAGE.columns.items():
        assert name in data.usage.column_names, name
        assert data.usage.schema.field(name).type == type_, name
    for name, type_ in schemas.TOKENFLEX_USAGE.columns.items():
        assert data.tokenflex_usage.schema.field(name).type == type_, name
    for name, type_ in schemas.TOKENFLEX_CONTRACTS.columns.items():
        assert data.contracts.schema.field(name).type == type_, name


def test_deterministic_for_same_arguments_and_end_date_default_is_yesterday():
    a = generate(seed=5, users=40, days=30, end_date="2026-01-31")
    b = generate(seed=5, users=40, days=30, end_date=dt.date(2026, 1, 31))
    assert a.usage.equals(b.usage) and a.users.equals(b.users) and a.tokenflex_usage.equals(b.tokenflex_usage)
    assert a.end_date == dt.date(2026, 1, 31) and a.start_date == dt.date(2026, 1, 2)
    d = generate(seed=5, users=40, days=3)
    assert d.end_date == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def test_premium_semantics(db):
    # collection rows: productName = collection, productLineCode = collection code != featureId
    bad = one(db, """SELECT count(*) FROM usage WHERE is_parent_product = 1 AND
                     (product_line_code = feature_id OR product_name NOT LIKE '%Collection')""")
    assert bad == 0
    assert one(db, "SELECT count(*) FROM usage WHERE is_parent_product = 0 AND product_line_code != feature_id") == 0
    assert one(db, "SELECT count(*) FROM usage WHERE source = 'sus' AND tokens IS NOT NULL") == 0
    assert one(db, "SELECT count(*) FROM usage WHERE source IN ('flex','ppu') AND (tokens IS NULL OR tokens <= 0)") == 0
    assert one(db, "SELECT count(DISTINCT source) FROM usage") == 3
    assert one(db, "SELECT count(DISTINCT version) FROM usage WHERE version IS NOT NULL") == 5
    # one row per user x product x date x source x version
    assert one(db, """SELECT count(*) FROM (SELECT hashed_user_id, product_name, child_product_name, usage_date, source,
                      version FROM usage GROUP BY ALL HAVING count(*) > 1)""") == 0
    assert one(db, "SELECT count(DISTINCT context_id) FROM usage") >= 3


def test_weekends_are_quieter(db):
    weekday, weekend = db.execute("""SELECT avg(n) FILTER (WHERE dow NOT IN (0, 6)), avg(n) FILTER (WHERE dow IN (0, 6))
        FROM (SELECT usage_date, dayofweek(usage_date) AS dow, count(*) AS n FROM usage GROUP BY ALL)""").fetchone()
    assert weekend < weekday / 3


def test_personas_feed_every_mart(db, data):
    end = data.end_date
    # inactive: a seat and no use in the last 30 days, some never used
    inactive = one(db, f"""SELECT count(*) FROM (SELECT DISTINCT user_index FROM users) s WHERE NOT EXISTS
        (SELECT 1 FROM usage u WHERE u.user_index = s.user_index AND u.usage_date > DATE '{end}' - 30)""")
    never = one(db, "SELECT count(*) FROM users WHERE last_accessed IS NULL")
    assert inactive >= 5 and never >= 2
    # flex over the break-even (> 7 days a month) and under it
    per_month = """SELECT user_index, child_product_name, usage_month, count(DISTINCT usage_date) AS d
                   FROM usage WHERE source = 'flex' GROUP BY ALL"""
    assert one(db, f"SELECT count(*) FROM ({per_month}) WHERE d > 7") >= 5
    assert one(db, f"SELECT count(*) FROM ({per_month}) WHERE d <= 7") >= 5
    # flex users on 2+ products the same day for more than 5 days a month
    multi = """SELECT user_index, usage_month, count(*) AS days FROM (
                 SELECT user_index, usage_month, usage_date FROM usage WHERE source = 'flex'
                 GROUP BY ALL HAVING count(DISTINCT child_product_name) >= 2) GROUP BY ALL"""
    assert one(db, f"SELECT count(*) FROM ({multi}) WHERE days > 5") >= 3
    # subscription users light enough for Flex (<= 7 days/month over 90 days)
    light = f"""SELECT user_index, child_product_name, count(DISTINCT usage_date) AS d FROM usage
                WHERE source = 'sus' AND usage_date > DATE '{end}' - 90 GROUP BY ALL"""
    assert one(db, f"SELECT count(*) FROM ({light}) WHERE d * 30.0 / 90 <= 7") >= 5
    # collection holders using only one product of it
    single = f"""SELECT user_index, product_line_code FROM usage WHERE is_parent_product = 1
                 AND usage_date > DATE '{end}' - 90 GROUP BY ALL HAVING count(DISTINCT child_product_name) = 1"""
    assert one(db, f"SELECT count(*) FROM ({single})") >= 5
    # users of 2+ standalone products one collection contains (AutoCAD + Revit, ...)
    standalone = """SELECT user_index FROM usage WHERE is_parent_product = 0 AND source = 'sus'
                    AND child_product_name IN ('AutoCAD', 'Revit', 'Civil 3D', 'Navisworks Manage', 'AutoCAD Architecture')
                    GROUP BY ALL HAVING count(DISTINCT child_product_name) >= 2"""
    assert one(db, f"SELECT count(*) FROM ({standalone})") >= 3
    # colleagues on one project using different versions of a product
    drift = """SELECT p.project, u.child_product_name FROM usage u JOIN people p USING (user_index)
               WHERE u.version IS NOT NULL GROUP BY ALL HAVING count(DISTINCT u.version) > 1"""
    assert one(db, f"SELECT count(*) FROM ({drift})") >= 3


def test_seats_subscriptions_and_assignments_agree(db):
    over = one(db, """SELECT count(*) FROM subscriptions s JOIN (SELECT team_id, offering_name, count(*) AS n FROM users
                      GROUP BY ALL) a USING (team_id, offering_name) WHERE a.n > s.seat_quantity""")
    assert over == 0
    spare = one(db, """SELECT count(*) FROM subscriptions s LEFT JOIN (SELECT team_id, offering_name, count(*) AS n
                       FROM users GROUP BY ALL) a USING (team_id, offering_name) WHERE coalesce(a.n, 0) < s.seat_quantity""")
    assert spare >= 3
    # every assignment belongs to a subscription, and sus usage belongs to an assignment
    assert one(db, "SELECT count(*) FROM users u ANTI JOIN subscriptions s USING (subscription_id)") == 0
    assert one(db, """SELECT count(*) FROM (SELECT DISTINCT user_index, offering_name FROM usage WHERE source = 'sus') x
                      ANTI JOIN users USING (user_index, offering_name)""") == 0


def test_tokenflex_mirrors_premium_flex_and_contract_totals(db, data):
    # every Premium flex usage day is one CHARGED Token Flex session of the same user (by email)
    premium = one(db, "SELECT count(*) FROM usage WHERE source = 'flex'")
    mirrored = one(db, """SELECT count(*) FROM tokenflex_usage t JOIN people p USING (user_index)
                          WHERE t.charge_category = 'CHARGED' AND NOT p.tokenflex_only AND t.user_name = p.email""")
    assert premium == mirrored
    assert one(db, "SELECT sum(tokens) FROM usage WHERE source = 'flex'") == one(
        db, "SELECT sum(tokens_consumed) FROM tokenflex_usage t JOIN people p USING (user_index) WHERE NOT p.tokenflex_only")
    # a few users exist only in Token Flex, under an NT id
    nt = db.execute("SELECT DISTINCT user_name FROM tokenflex_usage WHERE user_name NOT LIKE '%@%'").fetchall()
    assert 1 <= len(nt) <= 0.1 * data.people.num_rows
    # contract years: consumed = the sum of the year's usage rows; the window spans two years
    years = db.execute("""SELECT c.contract_year, c.consumed_tokens, coalesce(sum(t.tokens_consumed), 0)
                          FROM contracts c LEFT JOIN tokenflex_usage t USING (contract_year) GROUP BY ALL""").fetchall()
    assert all(consumed == summed for _, consumed, summed in years)
    assert sum(1 for _, consumed, _ in years if consumed > 0) == 2
    # enrichment custom fields are filled
    assert one(db, "SELECT count(*) FROM tokenflex_usage WHERE custom_field1 IS NULL OR custom_field3 IS NULL") == 0


def test_metadata_covers_most_but_not_all_users(data):
    emails = set(data.people["email"].to_pylist())
    meta = data.metadata["email"].to_pylist()
    assert set(meta) < emails
    assert 0.75 * len(emails) < len(meta) < len(emails)
    assert any(";" in p for p in data.metadata["project"].to_pylist())


def test_teams_option_and_bad_sizes():
    two = generate(seed=1, users=30, days=10, end_date="2026-10-31", teams=2)
    assert two.teams["team_name"].to_pylist() == ["New York Office", "London Studio"]
    assert set(two.usage["team_name"].unique().to_pylist()) <= {"New York Office", "London Studio"}
    named = generate(seed=1, users=30, days=10, end_date="2026-10-31", teams=["Alpha", "Beta", "Gamma"])
    assert named.teams["team_name"].to_pylist() == ["Alpha", "Beta", "Gamma"]
    assert len(set(named.teams["context_id"].to_pylist())) == 3
    with pytest.raises(ValueError, match="users"):
        generate(users=5, days=10)
    with pytest.raises(ValueError, match="days"):
        generate(users=30, days=0)
    with pytest.raises(ValueError, match="teams"):
        generate(users=30, days=10, teams=9)
