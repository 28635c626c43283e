"""``extract premium`` against the sandbox over real HTTP, compared with the sandbox's own data."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from extractor.premium import PERSONAL_FIELDS, USAGE_FIELDS

# the grain of a usage query grouped by every field we ask for (the personal ones follow the user)
GRAIN = [c for f, c in USAGE_FIELDS.items() if f not in PERSONAL_FIELDS]


def window(sandbox, days: int = 40) -> tuple[dt.date, dt.date]:
    end = sandbox.data.end_date
    return end - dt.timedelta(days=days - 1), end


def expected_usage(sandbox, since, until, teams=None) -> pa.Table:
    usage = sandbox.data.usage
    mask = pc.and_(pc.greater_equal(usage["usage_date"], pa.scalar(since)),
                   pc.less_equal(usage["usage_date"], pa.scalar(until)))
    usage = usage.filter(mask)
    if teams:
        usage = usage.filter(pc.is_in(usage["context_id"], pa.array(teams)))
    return usage.group_by(GRAIN).aggregate([("tokens", "sum")])


def key_set(table: pa.Table) -> set[tuple]:
    cols = [table.column(c).to_pylist() for c in GRAIN]
    return set(zip(*cols))


def tokens_total(table: pa.Table, column: str) -> float:
    return float(pc.sum(pc.fill_null(table[column], 0.0)).as_py() or 0.0)


def test_usage_users_subscriptions_match_the_sandbox(run, sandbox):
    since, until = window(sandbox)
    result = run("extract", "premium", "--since", str(since), "--until", str(until))
    assert "4 team(s)" in result.output, result.output

    usage = run.read("premium_usage")
    expected = expected_usage(sandbox, since, until)
    assert usage.num_rows == expected.num_rows
    assert key_set(usage) == key_set(expected)
    assert tokens_total(usage, "tokens") == pytest.approx(tokens_total(expected, "tokens_sum"))
    assert len(set(usage["_row_hash"].to_pylist())) == usage.num_rows  # no duplicates
    # personal fields came through (personal data visible in this sandbox)
    assert usage["email"].null_count == 0 and "@" in usage["email"][0].as_py()

    users = run.read("premium_users")
    want_users = sandbox.data.users
    assert users.num_rows == want_users.num_rows
    assert set(zip(users["team_id"].to_pylist(), users["hashed_user_id"].to_pylist(), users["offering_name"].to_pylist())) \
        == set(zip(want_users["team_id"].to_pylist(), want_users["hashed_user_id"].to_pylist(),
                   want_users["offering_name"].to_pylist()))

    subs = run.read("premium_subscriptions")
    want_subs = sandbox.data.subscriptions
    assert subs.num_rows == want_subs.num_rows
    assert pc.sum(subs["seat_quantity"]).as_py() == pc.sum(want_subs["seat_quantity"]).as_py()

    teams = run.read("premium_teams")
    assert sorted(teams["context_id"].to_pylist()) == sorted(sandbox.data.teams["context_id"].to_pylist())

    # state advanced per team, with the transaction
    state = run.state()["datasets"]["premium_usage"]
    assert {k: v["extracted_to"] for k, v in state.items()} == {t: str(until) for t in teams["context_id"].to_pylist()}

    # re-running the same range replaces it: same rows, nothing twice
    run("extract", "premium", "--since", str(since), "--until", str(until))
    again = run.read("premium_usage")
    assert again.num_rows == usage.num_rows
    assert tokens_total(again, "tokens") == pytest.approx(tokens_total(usage, "tokens"))
    assert run.read("premium_users").num_rows == users.num_rows
    assert run.read("premium_subscriptions").num_rows == subs.num_rows


def test_incremental_run_picks_up_from_state(run, sandbox):
    team = "4865648"
    until = sandbox.data.end_date
    first_until = until - dt.timedelta(days=10)
    since = until - dt.timedelta(days=30)
    run("extract", "premium", "--team", team, "--reports", "usage", "--since", str(since), "--until", str(first_until))
    assert run.state()["datasets"]["premium_usage"][team]["extracted_to"] == str(first_until)

    result = run("extract", "premium", "--team", team, "--reports", "usage", "--until", str(until), "--lag-days", "2")
    resumed_from = first_until - dt.timedelta(days=2)
    assert f"team {team} {resumed_from}..{until}" in result.output
    usage = run.read("premium_usage")
    expected = expected_usage(sandbox, since, until, teams=[team])
    assert key_set(usage) == key_set(expected) and usage.num_rows == expected.num_rows
    assert tokens_total(usage, "tokens") == pytest.approx(tokens_total(expected, "tokens_sum"))
    assert set(usage["context_id"].to_pylist()) == {team}


def test_unknown_team_and_bad_dates_are_input_errors(run, sandbox):
    result = run("extract", "premium", "--team", "999", ok=False)
    assert result.exit_code == 2 and "--team 999" in result.output
    result = run("extract", "premium", "--since", "2026-02-01", "--until", "2026-01-01", ok=False)
    assert result.exit_code == 2 and "after --until" in result.output
    result = run("extract", "premium", "--reports", "usage,seats", ok=False)
    assert result.exit_code == 2 and "seats" in result.output


def test_hash_personal_data(run, sandbox):
    since, until = window(sandbox, days=5)
    run("extract", "premium", "--team", "5012734", "--since", str(since), "--until", str(until),
        "--hash-personal-data")
    salt = run.data_dir / "state" / "salt"
    assert oct(salt.stat().st_mode & 0o777) == "0o600"
    usage = run.read("premium_usage")
    users = run.read("premium_users")
    emails = set(usage["email"].to_pylist()) | set(users["email"].to_pylist())
    assert emails and all(e and "@" not in e and len(e) == 64 for e in emails)
    names = set(users["first_name"].to_pylist()) | set(usage["full_name"].to_pylist())
    assert not names & set(sandbox.data.people["first_name"].to_pylist() + sandbox.data.people["full_name"].to_pylist())
    # stable key: a second run hashes every user to the same value
    run("extract", "premium", "--team", "5012734", "--since", str(since), "--until", str(until),
        "--hash-personal-data", "--reports", "users")
    assert set(run.read("premium_users")["email"].to_pylist()) == set(users["email"].to_pylist())
    # no clear-text email or name anywhere in the written files
    people = set(sandbox.data.people["email"].to_pylist()) | set(sandbox.data.people["full_name"].to_pylist())
    for path in (run.data_dir / "raw").rglob("*.parquet"):
        values = {v for col in pq.read_table(path).to_pydict().values() for v in col if isinstance(v, str)}
        assert not any("@" in v for v in values), path
        assert not values & people, path


def test_hidden_personal_data_falls_back_to_non_personal_fields(sandbox_factory, make_cli, tmp_path):
    hidden = sandbox_factory(hide_personal_data=True)
    run = make_cli(hidden.base_url, tmp_path / "data")
    since, until = window(hidden, days=10)
    result = run("extract", "premium", "--team", "4865648", "--since", str(since), "--until", str(until))
    assert "hidden" in result.output
    usage = run.read("premium_usage")
    expected = expected_usage(hidden, since, until, teams=["4865648"])
    assert key_set(usage) == key_set(expected)
    assert tokens_total(usage, "tokens") == pytest.approx(tokens_total(expected, "tokens_sum"))
    assert "email" not in usage.column_names or usage["email"].null_count == usage.num_rows


def test_page_size_falls_back_and_small_pages_add_up(run, sandbox, monkeypatch):
    """The sandbox refuses limit=20000 (400); the extractor falls back to the next size, and
    with 37-row pages the paging must still deliver every row exactly once."""
    import extractor.premium as premium

    monkeypatch.setattr(premium, "PAGE_LIMITS", (20000, 37))
    since, until = window(sandbox, days=35)
    run("extract", "premium", "--team", "5230981", "--reports", "usage", "--since", str(since), "--until", str(until))
    usage = run.read("premium_usage")
    expected = expected_usage(sandbox, since, until, teams=["5230981"])
    assert expected.num_rows > 3 * 37  # several pages per monthly window
    assert usage.num_rows == expected.num_rows and key_set(usage) == key_set(expected)
    assert tokens_total(usage, "tokens") == pytest.approx(tokens_total(expected, "tokens_sum"))


def test_usage_export_report_splits_long_ranges(sandbox_factory, make_cli, tmp_path, monkeypatch):
    """--reports usage-export: the USAGE export, windows of at most 365 days (shrunk to 20
    here so that a 45-day range needs three exports), files of any encoding, into
    premium_usage_files; a re-run replaces the range."""
    import extractor.premium as premium

    monkeypatch.setattr(premium, "MAX_EXPORT_DAYS", 20)
    box = sandbox_factory(export_split_rows=40)  # several files per export as well
    run = make_cli(box.base_url, tmp_path / "data")
    until = box.data.end_date
    since = until - dt.timedelta(days=44)
    args = ["extract", "premium", "--team", "4865648", "--reports", "usage-export", "--since", str(since),
            "--until", str(until)]
    run(*args)
    files = run.read("premium_usage_files")
    usage = box.data.usage
    want = usage.filter(pc.and_(pc.and_(pc.greater_equal(usage["usage_date"], pa.scalar(since)),
                                        pc.less_equal(usage["usage_date"], pa.scalar(until))),
                                pc.equal(usage["context_id"], "4865648")))
    assert files.num_rows == want.num_rows
    assert tokens_total(files, "tokens") == pytest.approx(tokens_total(want, "tokens"))
    assert set(files["team_id"].to_pylist()) == {"4865648"}
    exports = [j for j in box.app_state.jobs.values() if j.kind == "premium-export"]
    assert len(exports) >= 3
    assert sum(len(j.extra.get("files", [])) for j in exports) > len(exports)  # some exports had several files
    run(*args)
    assert run.read("premium_usage_files").num_rows == files.num_rows
