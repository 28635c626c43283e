"""The where parser: rules from the API docs, SQL safety, and hypothesis properties."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.sandbox.fields import PREMIUM_FIELDS, TOKENFLEX_FIELDS, query_fields
from extractor.sandbox.where import (
    BoolExpr,
    Comparison,
    WhereError,
    compile_where,
    parse_where,
    to_sql,
    to_text,
    validate,
)


def test_parses_the_documented_example():
    node = parse_where("contractYear=1 AND productName IN ('Revit Live', 'Vault Office', 'Moldflow Adviser Ultimate', 'ReMake')")
    assert node == BoolExpr("AND", (
        Comparison("contractYear", "=", 1),
        Comparison("productName", "IN", ("Revit Live", "Vault Office", "Moldflow Adviser Ultimate", "ReMake")),
    ))


def test_and_binds_tighter_and_one_level_of_parentheses():
    node = parse_where("a = 1 OR b = 2 AND c = 3")
    assert node == BoolExpr("OR", (Comparison("a", "=", 1), BoolExpr("AND", (Comparison("b", "=", 2), Comparison("c", "=", 3)))))
    node = parse_where("(a = 1 OR b = 2) and c <> 'x'")
    assert node.op == "AND" and node.items[0].op == "OR" and node.items[1] == Comparison("c", "!=", "x")
    assert parse_where("a = 1 AND (b = 2 AND c = 3)") == parse_where("a = 1 AND b = 2 AND c = 3")


@pytest.mark.parametrize("text, message", [
    ("NOT productName = 'Revit'", "NOT"),
    ("productName NOT IN ('Revit')", "NOT"),
    ("((a = 1) OR b = 2)", "one level"),
    ("a = 1 AND (b = 2 OR (c = 3))", "one level"),
    ("a = ", "expected a quoted value"),
    ("a 'x'", "expected an operator"),
    ("a = 1 b = 2", "unexpected"),
    ("a = 'unterminated", "unexpected text"),
    ("a = 1; DROP TABLE usage", "unexpected text"),
    ("(a = 1", r"expected \)"),
])
def test_syntax_errors(text, message):
    with pytest.raises(WhereError, match=message):
        parse_where(text)


@pytest.mark.parametrize("text, message", [
    ("fullName = 'Angel Schuy'", "cannot be used in where"),
    ("emailAddress LIKE 'ang%'", "cannot be used in where"),
    ("teamName = 'ACME'", "contextId"),
    ("nosuchField = 1", "unknown field"),
    ("source LIKE 'fle%'", "wildcards are not allowed"),
    ("productName LIKE 'Re%'", "at least 3"),
    ("productName LIKE '%_t%'", "at least 3"),
    ("usageDate >= 'yesterday'", "needs a date"),
    ("tokens > 'many'", "needs a number"),
])
def test_rule_errors_premium(text, message):
    with pytest.raises(WhereError, match=message):
        validate(parse_where(text), PREMIUM_FIELDS)


def test_personal_fields_refused_only_when_hidden():
    assert validate(parse_where("userId = 'ABC'"), PREMIUM_FIELDS)
    with pytest.raises(WhereError, match="personal data"):
        validate(parse_where("userId = 'ABC'"), PREMIUM_FIELDS, personal_hidden=True)


def test_session_fields_refused_in_tokenflex_queries_but_not_exports():
    with pytest.raises(WhereError, match="only allowed in exports"):
        compile_where("chargeCategory = 'FREE'", query_fields(TOKENFLEX_FIELDS, allow_session=False))
    assert compile_where("chargeCategory = 'FREE'", query_fields(TOKENFLEX_FIELDS, allow_session=True))[1] == ["FREE"]


def test_values_become_parameters_never_sql_text():
    evil = "x' OR '1'='1"
    sql, params = compile_where(f"productName = '{evil.replace(chr(39), chr(39) * 2)}' OR version IN ('2025', '2026')",
                                PREMIUM_FIELDS)
    assert "OR '1'" not in sql and params == [evil, "2025", "2026"]
    assert sql == "(product_name = ?) OR (version IN (?, ?))"
    con = duckdb.connect()
    con.execute("CREATE TABLE usage (product_name VARCHAR, version VARCHAR)")
    con.execute("INSERT INTO usage VALUES ('Revit', '2024'), ('AutoCAD', '2026')")
    assert con.execute(f"SELECT count(*) FROM usage WHERE {sql}", params).fetchone()[0] == 1


def test_field_names_are_case_insensitive_and_canonicalised():
    node = validate(parse_where("PRODUCTNAME = 'Revit' and UsageDate >= '2026-01-01'"), PREMIUM_FIELDS)
    assert node.items[0].field == "productName" and node.items[1].field == "usageDate"
    assert str(node.items[1].value) == "2026-01-01"


# ---- properties ----------------------------------------------------------------------------

FIELD_NAMES = ["productName", "version", "source", "contextId", "featureId"]
text_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
values = st.one_of(text_values, st.integers(-10**6, 10**6))
comparisons = st.one_of(
    st.builds(Comparison, st.sampled_from(FIELD_NAMES), st.sampled_from(["=", "!=", "<", ">", "<=", ">="]), values),
    st.builds(Comparison, st.sampled_from(FIELD_NAMES), st.just("IN"), st.lists(values, min_size=1, max_size=4).map(tuple)),
    st.builds(Comparison, st.sampled_from(FIELD_NAMES), st.just("LIKE"), text_values),
)


def _bool(op, inner):
    return st.lists(inner, min_size=2, max_size=3).map(lambda items: BoolExpr(op, tuple(items)))


# shapes the grammar can express with one level of parentheses
ands = st.one_of(comparisons, _bool("AND", comparisons))
ors = st.one_of(comparisons, _bool("OR", st.one_of(comparisons, _bool("AND", comparisons))))
top = st.one_of(ors, _bool("AND", st.one_of(comparisons, _bool("OR", ands))),
                _bool("OR", st.one_of(comparisons, _bool("AND", st.one_of(comparisons, _bool("OR", ands))))))


@settings(max_examples=200, deadline=None)
@given(top)
def test_round_trip(node):
    assert parse_where(to_text(node)) == node


@settings(max_examples=250, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcdeINORLKTAND ()'\",=<>!%_0123456789.-;")), max_size=60))
def test_never_crashes_with_anything_but_where_error(text):
    try:
        node = parse_where(text)
    except WhereError:
        return
    try:
        node = validate(node, PREMIUM_FIELDS)
    except WhereError:
        return
    sql, params = to_sql(node, PREMIUM_FIELDS)
    assert sql.count("?") == len(params)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_unicode_is_parsed_or_refused_cleanly(text):
    try:
        parse_where(text)
    except WhereError as err:
        assert str(err).startswith("where:")
