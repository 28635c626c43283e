"""The raw dataset writer (Delta tables): replace semantics, de-duplication, one commit per dataset with its
state, a killed writer, the lock, history and restore."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extractor.dataset import DataDir, Replace
from extractor.errors import InputError, LockedError, UsageError
from extractor.schemas import DATASETS


def usage(rows: list[tuple[str, str, str, float]]) -> pa.Table:
    d, p, c, t = zip(*rows) if rows else ((), (), (), ())
    return pa.table({"usage_date": list(d), "product_name": list(p), "context_id": list(c), "tokens": list(t)})


def write(dd: DataDir, dataset: str, table: pa.Table, source: str = "t", replace: Replace | None = None) -> None:
    with dd.lock("test"), dd.transaction() as tx:
        tx.write(dataset, table, source=source, replace=replace)


def rows(dd: DataDir, dataset: str = "premium_usage") -> list[tuple]:
    t = dd.read(dataset)
    return sorted((r["usage_date"].isoformat(), r["product_name"], r["context_id"], r["tokens"]) for r in t.to_pylist())


def visible(dd: DataDir) -> dict[str, tuple]:
    """What a reader sees: each table's version, its files and the state."""
    return {name: (dd.table(name).version(), tuple(dd.data_files(name))) for name in DATASETS} | {
        "state": repr(dd.read_state())}


BASE = [("2026-01-30", "Revit", "1", 10.0), ("2026-01-31", "AutoCAD", "1", 0.0), ("2026-02-01", "Revit", "2", 7.0)]


def test_roundtrip_types_partitions_and_empty_tables(tmp_path):
    dd = DataDir(tmp_path)
    t = usage(BASE).append_column("brand_new_column", pa.array([1, 2, 3]))
    write(dd, "premium_usage", t)
    got = dd.read("premium_usage")
    assert got.schema.field("usage_date").type == pa.date32()
    assert got.schema.field("tokens").type == pa.float64()
    assert sorted(got.column("brand_new_column").to_pylist()) == ["1", "2", "3"]  # kept, as text
    assert {Path(p).parent.name for p in dd.data_files("premium_usage")} == {"_month=2026-01", "_month=2026-02"}
    for name in DATASETS:  # every dataset a Delta table with its columns, even those never written
        assert (dd.raw_dir / name / "_delta_log").is_dir()
        assert set(DATASETS[name].columns) <= set(dd.read(name).column_names)
        assert dd.read(name).num_rows == (3 if name == "premium_usage" else 0)
    assert len(set(got.column("_row_hash").to_pylist())) == 3


def test_rewriting_the_same_rows_adds_nothing(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE), source="a.csv")
    write(dd, "premium_usage", usage(BASE[1:]), source="b.csv")  # overlapping file
    assert rows(dd) == sorted(BASE)


def test_extra_column_does_not_change_the_row_hash(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    write(dd, "premium_usage", usage(BASE).append_column("note", pa.array(["x"] * 3)))
    assert dd.read("premium_usage").num_rows == 3


def test_replace_range_only_touches_its_scope(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    new = usage([("2026-02-01", "Maya", "1", 3.0)])
    write(dd, "premium_usage", new, replace=Replace(match={"context_id": "1"}, date_from=date(2026, 1, 31), date_to=date(2026, 2, 28)))
    assert rows(dd) == [("2026-01-30", "Revit", "1", 10.0), ("2026-02-01", "Maya", "1", 3.0), ("2026-02-01", "Revit", "2", 7.0)]


def test_a_month_emptied_by_a_replace_disappears(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    write(dd, "premium_usage", usage([]), replace=Replace(match={"context_id": "2"}, date_from=date(2026, 2, 1), date_to=date(2026, 2, 28)))
    assert {Path(p).parent.name for p in dd.data_files("premium_usage")} == {"_month=2026-01"}
    assert rows(dd) == sorted(BASE[:2])


def test_snapshot_replaces_only_the_teams_in_the_file(tmp_path):
    dd = DataDir(tmp_path)
    first = pa.table({"team_name": ["A", "A", "B"], "offering_name": ["Revit", "Maya", "Revit"], "email": ["a@x", "b@x", "c@x"]})
    write(dd, "premium_users", first, replace=Replace(snapshot=True))
    write(dd, "premium_users", pa.table({"team_name": ["A"], "offering_name": ["AutoCAD"], "email": ["a@x"]}), replace=Replace(snapshot=True))
    got = sorted((r["team_name"], r["offering_name"]) for r in dd.read("premium_users").to_pylist())
    assert got == [("A", "AutoCAD"), ("B", "Revit")]
    write(dd, "premium_users", pa.table({"team_name": ["C"], "offering_name": ["Maya"]}), replace=Replace(everything=True))
    assert dd.read("premium_users").column("team_name").to_pylist() == ["C"]


def test_bad_value_names_source_and_column_and_changes_nothing(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    before = visible(dd)
    bad = pa.table({"usage_date": ["2026-03-01"], "product_name": ["Revit"], "tokens": ["lots"]})
    with pytest.raises(InputError, match=r"usage\.csv: column 'tokens'.*lots"):
        write(dd, "premium_usage", bad, source="usage.csv")
    assert visible(dd) == before
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_an_error_inside_the_transaction_rolls_everything_back(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    before = visible(dd)
    with pytest.raises(RuntimeError):
        with dd.lock("test"), dd.transaction() as tx:
            tx.write("premium_usage", usage([("2026-03-01", "Maya", "1", 1.0)]), source="x")
            tx.set_state("premium_usage", "1", {"extracted_to": "2026-03-01"})
            raise RuntimeError("network went away")
    assert visible(dd) == before


def test_an_interrupt_while_a_transaction_closes_leaves_no_scratch(tmp_path, monkeypatch):
    # Ctrl-C inside Transaction.close(), before it removes its folder: releasing the lock
    # removes the run's scratch anyway (CI once saw a tx- folder left by an interrupted extract)
    from extractor import dataset

    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE))
    before = visible(dd)
    real_close = dataset.Transaction.close

    def interrupted_close(self):
        monkeypatch.setattr(dataset.Transaction, "close", real_close)
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset.Transaction, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        with dd.lock("test"), dd.transaction() as tx:
            tx.write("premium_usage", usage([("2026-03-01", "Maya", "1", 1.0)]), source="x")
            raise KeyboardInterrupt
    assert not list(dd.tmp_dir.glob("tx-*"))
    assert visible(dd) == before


WRITER = textwrap.dedent(
    """
    import sys, pyarrow as pa
    from datetime import date
    from extractor.dataset import DataDir, Replace
    dd = DataDir(sys.argv[1])
    t = pa.table({"usage_date": ["2026-01-31", "2026-02-01", "2026-03-05"], "product_name": ["Maya", "Maya", "Civil 3D"],
                  "context_id": ["1", "1", "1"], "tokens": [1.0, 2.0, 3.0]})
    with dd.lock("writer"), dd.transaction() as tx:
        tx.write("premium_usage", t, source="run2",
                 replace=Replace(match={"context_id": "1"}, date_from=date(2026, 1, 31), date_to=date(2026, 3, 31)))
        tx.set_state("premium_usage", "1", {"extracted_to": "2026-03-31"})
    """
)


def run_writer(data_dir: Path, crash_at: str | None) -> int:
    env = dict(os.environ)
    env.pop("APS_USAGE_CRASH_AT", None)
    if crash_at:
        env["APS_USAGE_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", WRITER, str(data_dir)], env=env, timeout=120).returncode


@pytest.mark.parametrize("point,committed", [("staging", False), ("before-commit", False), ("mid-commit", False),
                                             ("after-commit", True)])
def test_killed_writer_leaves_old_or_new_data_and_a_rerun_completes(tmp_path, point, committed):
    reference = tmp_path / "reference"
    write(DataDir(reference), "premium_usage", usage(BASE))
    assert run_writer(reference, None) == 0
    expected = rows(DataDir(reference))

    crashed = tmp_path / "crashed"
    dd = DataDir(crashed)
    write(dd, "premium_usage", usage(BASE))
    old, old_version = rows(dd), dd.table("premium_usage").version()
    assert run_writer(crashed, point) == -9  # really killed
    assert rows(dd) == (expected if committed else old)  # no recovery step: the log is the truth
    assert dd.table("premium_usage").version() == old_version + committed
    assert (dd.read_state()["datasets"].get("premium_usage", {}).get("1") is not None) == committed
    with dd.lock("next run"):  # the next writer clears the dead one's scratch
        assert list((crashed / ".tmp").iterdir()) == []
    assert run_writer(crashed, None) == 0  # the normal re-run
    assert rows(dd) == expected
    assert dd.read_state() == DataDir(reference).read_state() | {"last_run": dd.read_state()["last_run"]}


def test_second_writer_is_refused_or_waits(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import time; from extractor.dataset import DataDir\n"
         f"with DataDir({str(tmp_path)!r}).lock('long extraction'):\n    print('held', flush=True); time.sleep(3)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockedError, match="long extraction"):
        with DataDir(tmp_path).lock("second"):
            pass
    started = time.monotonic()
    with DataDir(tmp_path).lock("patient", wait=30):
        assert time.monotonic() - started > 0.5
    holder.wait(timeout=30)


def test_two_writes_with_different_columns_in_one_transaction(tmp_path):
    dd = DataDir(tmp_path)
    subs = pa.table({"team_name": ["A"], "offering_name": ["Revit"], "seat_quantity": [5]})
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_subscriptions", subs, source="a.csv")
        tx.write("premium_subscriptions", pa.table({"team_name": ["B"], "offering_name": ["Maya"]}), source="b.csv")
        tx.write("premium_subscriptions", subs.append_column("plan", pa.array([None], pa.string())), source="c.csv")
    got = sorted((r["team_name"], r["offering_name"], r["seat_quantity"]) for r in dd.read("premium_subscriptions").to_pylist())
    assert got == [("A", "Revit", 5), ("B", "Maya", None)]  # c.csv's row is a.csv's row: a NULL column hashes alike


def test_plain_and_dictionary_encoded_text_in_one_month_file(tmp_path):
    """A CSV import's text comes dictionary-encoded, an API's plain: one transaction may write
    both into one month's file, which stores them as plain Parquet strings either way."""
    dd = DataDir(tmp_path)

    def encoded(table: pa.Table, *names: str) -> pa.Table:
        for name in names:
            table = table.set_column(table.column_names.index(name), name, table.column(name).dictionary_encode())
        return table

    with dd.lock("test"), dd.transaction() as tx:  # the table's own writer: known columns only
        tx.write("premium_usage", usage([("2026-01-02", "Maya", "3", 1.0)]), source="api")
        tx.write("premium_usage", encoded(usage(BASE[:2]), "product_name"), source="a.csv")
    assert rows(dd) == sorted([*BASE[:2], ("2026-01-02", "Maya", "3", 1.0)])
    (path,) = dd.data_files("premium_usage")
    schema = pq.read_schema(path)
    assert schema.field("product_name").type == pa.string() and schema.field("_source").type == pa.string()
    # a new column: delta-rs's writer (schema merge), handed plain text
    write(dd, "premium_usage", encoded(usage(BASE[2:]).append_column("note", pa.array(["x"])), "product_name", "note"))
    got = dd.read("premium_usage")
    assert got.schema.field("note").type == pa.string()
    assert sorted(zip(got.column("_source").to_pylist(), got.column("note").to_pylist()),
                  key=str) == sorted([("a.csv", None), ("a.csv", None), ("api", None), ("t", "x")], key=str)
    # the same rows as plain text hash alike: writing them again adds nothing
    write(dd, "premium_usage", usage(BASE), source="again")
    assert dd.read("premium_usage").num_rows == 4


def test_large_write_keeps_every_row_and_writes_few_files(tmp_path):
    dd = DataDir(tmp_path)
    n = 200_000
    dates = pa.array([date(2026, 1 + i % 3, 1 + i % 28) for i in range(n)])
    t = pa.table({"usage_date": dates, "product_name": pa.array(["Revit"] * n), "user_id": pa.array([str(i) for i in range(n)])})
    write(dd, "premium_usage", t.to_batches(max_chunksize=5_000), source="big")
    assert dd.read("premium_usage").num_rows == n
    assert len(dd.data_files("premium_usage")) <= 6  # a file or two a month, not one per 5,000-row batch


def test_history_and_restore(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, "premium_usage", usage(BASE), source="good.csv")
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage", usage([("2026-01-30", "Revit", "1", 99.0)]), source="bad.csv",
                 replace=Replace(match={"context_id": "1"}, date_from=date(2026, 1, 1), date_to=date(2026, 1, 31)))
        tx.set_state("premium_usage", "1", {"extracted_to": "2026-01-31"})
    history = dd.history("premium_usage")
    assert [(h["rows_added"], h["rows_removed"], h["sources"]) for h in history[:2]] == [
        (1, 2, ["bad.csv"]), (3, 0, ["good.csv"])]
    assert history[0]["command"] == "test"
    with dd.lock("restore"):
        dd.restore("premium_usage", history[1]["version"])
    assert rows(dd) == sorted(BASE)
    assert "1" not in dd.read_state()["datasets"].get("premium_usage", {})  # the state of that version, too
    assert dd.history("premium_usage")[0]["operation"] == "RESTORE"
    with pytest.raises(UsageError, match="no version 99"):
        with dd.lock("restore"):
            dd.restore("premium_usage", 99)


def test_build_is_refused_while_another_run_holds_the_data_dir(tmp_path):
    from click.testing import CliRunner

    from extractor.cli import cli

    with DataDir(tmp_path).lock("extract premium"):
        result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "build"])
    assert result.exit_code == 5, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "extract premium" in errors[0]
