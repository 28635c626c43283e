"""normalise_header: properties (hypothesis) and the aliases of both Autodesk schemes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extractor.errors import InputError
from extractor.importing import ALIASES, KINDS, normalise_header
from extractor.importing.headers import column_names

SNAKE = re.compile(r"^([^\W_]+(_[^\W_]+)*)?$")

# (older name, 2026 name / display header, canonical)
BOTH_SCHEMES = [
    ("day_used", "Date", "usage_date"),
    ("team_alias", "Team", "team_name"),
    ("autodesk_id", "User ID", "user_id"),
    ("hashed_autodesk_id", "Hashed User ID", "hashed_user_id"),
    ("tokens_used", "Tokens", "tokens"),
    ("tokens_used", "Tokens Used", "tokens"),
    ("email", "Email", "email"),
    ("product_name", "Product", "product_name"),
    ("offering_name", "Offering", "offering_name"),
    ("team_alias", "group", "team_name"),
    ("assigned_date", "Assigned Date", "assigned_date"),
    ("days_inactive", "Days Inactive", "days_inactive"),
    ("days_used", "Days Used", "days_used"),
    ("last_accessed", "Last Accessed", "last_accessed"),
    ("monthly_average", "Monthly Average", "monthly_average"),
    ("seat_assignment", "Seat Assignment", "seat_assignment"),
    ("usageDate", "Usage Date", "usage_date"),  # Token Flex API field name
    ("tokensConsumed", "Tokens Consumed", "tokens_consumed"),
    ("customField1", "Custom Field 1", "custom_field1"),
    ("chargedItemID", "Charged Item ID", "charged_item_id"),
    ("cost_center", "Cost Center", "cost_center"),
    ("skill_level", "Skill Level", "skill_level"),
]


@pytest.mark.parametrize("old, new, canonical", BOTH_SCHEMES)
def test_both_naming_schemes_land_on_one_name(old, new, canonical):
    assert normalise_header(old) == canonical
    assert normalise_header(new) == canonical


@pytest.mark.parametrize("text, expected", [
    ("\ufeffday_used", "usage_date"),
    ("  Day Used  ", "usage_date"),
    ("DAY-USED", "usage_date"),
    ("DayUsed", "usage_date"),
    ("hashedAutodeskId", "hashed_user_id"),
    ("E-mail", "email"),
    ("Cost Centre", "cost_center"),
    ("Région", "region"),
    ("productLineCode", "product_line_code"),
    ("licenseServerTimeZoneOffset", "license_server_time_zone_offset"),
    ("Foo  //  Bar", "foo_bar"),
    ("", ""),
])
def test_examples(text, expected):
    assert normalise_header(text) == expected


def _styles(name: str):
    words = name.split("_")
    camel = words[0] + "".join(w.capitalize() for w in words[1:])
    return st.sampled_from([
        name, name.upper(), " ".join(w.capitalize() for w in words), camel, "-".join(words),
        "\ufeff" + name, f"  {name.upper()}\t", "__".join(words), " / ".join(words),
    ])


@given(st.sampled_from(sorted(ALIASES)).flatmap(lambda k: st.tuples(st.just(k), _styles(k))))
def test_any_spelling_of_an_alias_lands_on_its_column(case):
    alias, spelled = case
    assert normalise_header(spelled) == ALIASES[alias]


_CANONICAL = sorted({c for k in KINDS.values() for c in k.spec.columns})


@given(st.sampled_from(_CANONICAL).flatmap(lambda c: st.tuples(st.just(c), _styles(c))))
def test_any_spelling_of_a_canonical_name_is_that_name(case):
    canonical, spelled = case
    assert normalise_header(spelled) == canonical


@settings(max_examples=400)
@given(st.text())
def test_idempotent(text):
    once = normalise_header(text)
    assert normalise_header(once) == once


@settings(max_examples=400)
@given(st.text())
def test_output_is_snake_case(text):
    out = normalise_header(text)
    assert SNAKE.match(out), out
    assert out == out.lower()
    assert "__" not in out and not out.startswith("_") and not out.endswith("_")


@given(st.lists(st.text(alphabet="abcXYZ _-", min_size=1, max_size=8), min_size=1, max_size=6, unique=True))
def test_column_names_unique_or_a_clear_error(headers):
    try:
        names = column_names(headers, "f.csv")
    except InputError as err:
        assert str(err).startswith("f.csv: duplicate column")
        return
    assert len(set(names)) == len(names) == len(headers)


def test_no_alias_chains():
    assert not set(ALIASES.values()) & set(ALIASES)


def test_two_aliases_of_one_column_the_better_wins():
    assert column_names(["Team", "Group", "Email"], "f") == ["team_name", "group", "email"]
    assert column_names(["Group", "team_name"], "f") == ["group", "team_name"]


def test_same_header_twice_is_an_error():
    with pytest.raises(InputError, match=r"^f.csv: duplicate column 'email' \(headers 'Email' and ' EMAIL'\)"):
        column_names(["Email", "Day Used", " EMAIL"], "f.csv")


def test_empty_headers_get_positional_names():
    assert column_names(["Email", "", None], "f") == ["email", "column_2", "column_3"]
