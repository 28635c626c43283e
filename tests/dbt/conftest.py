"""Fixtures for the dbt tests (helpers that write raw datasets: dbt_rawdata.py)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")


@pytest.fixture(scope="session")
def sandbox_small_data():
    """Small deterministic sandbox data (fixed seed and end date)."""
    from extractor.sandbox.data import generate

    return generate(seed=11, users=40, days=75, end_date="2026-11-15")
