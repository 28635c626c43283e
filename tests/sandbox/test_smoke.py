"""First proof that every area of the sandbox answers over real HTTP."""

from extractor.sandbox.data import generate

from .helpers import client, run_premium_query, run_tokenflex_query


def test_generate_is_deterministic():
    a = generate(seed=3, users=30, days=40, end_date="2026-10-31")
    b = generate(seed=3, users=30, days=40, end_date="2026-10-31")
    assert a.usage.equals(b.usage)
    assert a.tokenflex_usage.equals(b.tokenflex_usage)
    c = generate(seed=4, users=30, days=40, end_date="2026-10-31")
    assert not a.usage.equals(c.usage)


def test_premium_and_tokenflex_answer(sandbox):
    with client(sandbox.base_url) as c:
        teams = c.get("/insights/v1/contexts").json()
        assert len(teams) >= 3
        columns, rows = run_premium_query(c, teams[0]["contextId"], {"fields": ["productName"], "metrics": ["totalUniqueDays"]})
        assert columns == ["productName", "totalUniqueDays"] and rows
        contract = c.get("/tokenflex/v1/contract").json()[0]["contractNumber"]
        columns, rows = run_tokenflex_query(c, contract, {"fields": ["usageMonth"], "metrics": ["tokensConsumed"]})
        assert columns == ["usageMonth", "tokensConsumed"] and rows
