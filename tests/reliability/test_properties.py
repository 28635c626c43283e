"""Hypothesis properties not already covered by tests/importing/test_headers.py and
tests/sandbox/test_where.py:

- the sandbox's where language: valid generated clauses (random keyword case, spacing, ``<>``,
  one level of parentheses, IN lists, LIKE patterns) are accepted, and the compiled SQL,
  run by DuckDB on the sandbox's usage rows, selects exactly the rows that an independent
  Python evaluation (SQL three-valued logic) selects;
- the header normaliser: invisible wrappers (BOM, NBSP, zero-width space, tabs, CR/LF) and
  the separator between words never change the column name.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extractor.importing import normalise_header
from extractor.sandbox.data import generate
from extractor.sandbox.fields import PREMIUM_FIELDS
from extractor.sandbox.where import compile_where

COLUMNS = {"productName": "product_name", "childProductName": "child_product_name", "version": "version",
           "source": "source", "usageDate": "usage_date", "tokens": "tokens"}


@pytest.fixture(scope="module")
def usage():
    data = generate(seed=11, users=25, days=40, end_date="2026-10-31")
    table = data.usage.select(list(COLUMNS.values()))
    table = table.append_column("rid", pa.array(range(table.num_rows), pa.int64()))
    rows = table.to_pylist()
    con = duckdb.connect()
    con.register("usage", table)
    yield rows, con
    con.close()


# -- an independent model of a where clause -------------------------------------------------
@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # = != <> < > <= >= IN LIKE
    value: object


@dataclass(frozen=True)
class Bool:
    op: str  # AND | OR
    items: tuple


def _like_regex(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)


def _compare(left, op, right):
    if left is None:
        return None  # SQL: a comparison with NULL is unknown
    if op == "IN":
        return left in right
    if op == "LIKE":
        return _like_regex(right).fullmatch(left) is not None
    return {"=": left == right, "!=": left != right, "<>": left != right, "<": left < right, ">": left > right,
            "<=": left <= right, ">=": left >= right}[op]


def evaluate(node, row):
    """Three-valued: True, False or None (unknown)."""
    if isinstance(node, Cmp):
        return _compare(row[COLUMNS[node.field]], node.op, node.value)
    values = [evaluate(i, row) for i in node.items]
    if node.op == "AND":
        return False if False in values else (None if None in values else True)
    return True if True in values else (None if None in values else False)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(field: str, value) -> str:
    if field == "usageDate":
        return _quote(value.isoformat())
    if field == "tokens":
        return repr(value)
    return _quote(value)


@st.composite
def keyword(draw, word: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)


@st.composite
def field_name(draw, name: str) -> str:
    return draw(st.sampled_from([name, name.lower(), name.upper()]))


@dataclass
class Pools:
    strings: dict  # field -> observed values
    dates: list
    tokens: list


def pools(rows) -> Pools:
    strings = {f: sorted({r[c] for r in rows if r[c] is not None}) for f, c in COLUMNS.items()
               if f not in ("usageDate", "tokens")}
    return Pools(strings, sorted({r["usage_date"] for r in rows}), sorted({r["tokens"] for r in rows if r["tokens"] is not None}))


@st.composite
def comparison(draw, p: Pools) -> tuple[Cmp, str]:
    field = draw(st.sampled_from(list(COLUMNS)))
    if field == "usageDate":
        value = draw(st.one_of(st.sampled_from(p.dates), st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31))))
    elif field == "tokens":
        value = draw(st.one_of(st.sampled_from(p.tokens or [0.0]), st.integers(-5, 500)))
    else:
        value = draw(st.one_of(st.sampled_from(p.strings[field]), st.text(alphabet="AaRrvVt 3-'", max_size=8)))
    ops = ["=", "!=", "<>", "<", ">", "<=", ">=", "IN"]
    if field not in ("usageDate", "tokens", "source") and isinstance(value, str) and len(value) >= 3:
        ops.append("LIKE")
    op = draw(st.sampled_from(ops))
    name = draw(field_name(field))
    if op == "IN":
        others = draw(st.lists(st.sampled_from(p.strings[field]) if field in p.strings else
                               st.sampled_from(p.dates) if field == "usageDate" else st.sampled_from(p.tokens or [0.0]),
                               max_size=3))
        values = tuple([value, *others])
        text = f"{name} {draw(keyword('IN'))} ({', '.join(_literal(field, v) for v in values)})"
        return Cmp(field, "IN", values), text
    if op == "LIKE":
        start = draw(st.integers(0, len(value) - 3))
        core = value[start:start + draw(st.integers(3, len(value) - start))]
        pattern = draw(st.sampled_from([f"%{core}%", f"{core}%", f"%{core}", core, core[:1] + "_" + core[2:] + "%"]))
        if len(pattern.replace("%", "").replace("_", "")) < 3:
            pattern = f"%{core}%"
        return Cmp(field, "LIKE", pattern), f"{name} {draw(keyword('LIKE'))} {_quote(pattern)}"
    spacing = draw(st.sampled_from(["", " ", "  "]))
    return Cmp(field, op, value), f"{name}{spacing}{op}{spacing}{_literal(field, value)}"


@st.composite
def clause(draw, p: Pools) -> tuple[object, str]:
    """OR of ANDs whose items may be one parenthesised OR: the grammar's one level."""
    def group():
        items = draw(st.lists(comparison(p), min_size=2, max_size=3))
        sep = f" {draw(keyword('OR'))} "
        return Bool("OR", tuple(n for n, _ in items)), "(" + sep.join(t for _, t in items) + ")"

    def conjunction():
        items = [draw(comparison(p)) if draw(st.integers(0, 3)) else group() for _ in range(draw(st.integers(1, 3)))]
        sep = f" {draw(keyword('AND'))} "
        node = items[0][0] if len(items) == 1 else Bool("AND", tuple(n for n, _ in items))
        return node, sep.join(t for _, t in items)

    parts = [conjunction() for _ in range(draw(st.integers(1, 3)))]
    sep = f" {draw(keyword('OR'))} "
    node = parts[0][0] if len(parts) == 1 else Bool("OR", tuple(n for n, _ in parts))
    return node, sep.join(t for _, t in parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(data=st.data())
def test_valid_clauses_select_what_a_python_evaluation_selects(usage, data):
    rows, con = usage
    node, text = data.draw(clause(pools(rows)))
    sql, params = compile_where(text, PREMIUM_FIELDS)  # valid: must not raise
    got = sorted(r[0] for r in con.execute(f"SELECT rid FROM usage WHERE {sql}", params).fetchall())
    expected = [r["rid"] for r in rows if evaluate(node, r) is True]
    assert got == expected, (text, sql, params)


# -- header normaliser -------------------------------------------------------------------------
INVISIBLE = st.text(alphabet=["\ufeff", "\u00a0", "\u200b", " ", "\t", "\r", "\n"], max_size=4)
WORDS = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=7), min_size=1, max_size=4)


@settings(max_examples=300)
@given(st.text(max_size=30), INVISIBLE, INVISIBLE)
def test_invisible_wrappers_do_not_change_the_name(text, before, after):
    assert normalise_header(before + text + after) == normalise_header(text)


@settings(max_examples=300)
@given(WORDS, st.sampled_from([" ", "_", "-", "/", ".", " - ", "__", "\t"]))
def test_the_separator_between_words_does_not_matter(words, separator):
    assert normalise_header(separator.join(words)) == normalise_header(" ".join(words))
