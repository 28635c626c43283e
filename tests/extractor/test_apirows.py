"""API rows -> typed Arrow columns: the columnar fast path and the per-value path agree, and
a value that fits no type is reported with its row and field."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from extractor.apirows import filter_dates, typed_columns
from extractor.errors import ApiError
from extractor.schemas import PREMIUM_USAGE, TOKENFLEX_CONTRACTS


def test_columns_are_typed_per_schema_and_extras_stay_text():
    table = typed_columns({
        "usage_date": ["2026-01-18", "2026-01-19T00:00:00Z", None],
        "tokens": [3, 4.5, None],
        "is_parent_product": ["1", 0, None],  # mixed: the per-value path
        "version": [2024, 2025, None],
        "usage_week": ["2026-01-18T00:00:00Z", None, None],
    }, PREMIUM_USAGE, "test")
    assert table.schema.field("usage_date").type == pa.date32()
    assert table["usage_date"].to_pylist() == [dt.date(2026, 1, 18), dt.date(2026, 1, 19), None]
    assert table["tokens"].to_pylist() == [3.0, 4.5, None]
    assert table["is_parent_product"].to_pylist() == [1, 0, None]
    assert table["version"].to_pylist() == ["2024", "2025", None]
    assert table.schema.field("usage_week").type == pa.string()


def test_booleans_and_int_like_floats():
    table = typed_columns({"is_active": ["true", "False", None], "contract_number": [110001234567.0, None, None]},
                          TOKENFLEX_CONTRACTS, "test")
    assert table["is_active"].to_pylist() == [True, False, None]
    assert table["contract_number"].to_pylist() == ["110001234567", None, None]


def test_a_bad_value_names_row_and_field():
    with pytest.raises(ApiError, match=r"usage query 42: row 2, field 'usage_date': unexpected value 'yesterday'"):
        typed_columns({"usage_date": ["2026-01-01", "yesterday"]}, PREMIUM_USAGE, "usage query 42")


def test_filter_dates_keeps_the_replaced_range_only():
    table = typed_columns({"usage_date": ["2026-01-01", "2026-01-15", "2026-02-01"]}, PREMIUM_USAGE, "t")
    kept = filter_dates(table, "usage_date", dt.date(2026, 1, 2), dt.date(2026, 1, 31))
    assert kept["usage_date"].to_pylist() == [dt.date(2026, 1, 15)]
