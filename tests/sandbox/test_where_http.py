"""Over HTTP, any where clause gets a 200 or a 400 with a message: never a 500 or a dropped connection."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import client

PIECES = ["productName", "source", "usageDate", "userId", "fullName", "version", "tokens", "contextId", "=", "!=",
          "<", ">=", "IN", "LIKE", "AND", "OR", "NOT", "(", ")", ",", "'Revit'", "'%Cad%'", "'2026-10-01'", "3", "'",
          "''", "1.5", ";", "--", "DROP", "\\"]


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox.base_url) as c:
        yield c


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.lists(st.sampled_from(PIECES), max_size=9).map(" ".join), st.text(max_size=30)))
def test_where_answers_200_or_400(api, sandbox, where):
    r = api.post("/insights/v1/usage-queries", params={"contextId": sandbox.data.teams["context_id"][0].as_py()},
                 json={"metrics": ["uniqueUsers"], "where": where})
    assert r.status_code in (200, 400), (where, r.status_code, r.text)
    if r.status_code == 400:
        assert r.json()["developerMessage"]
