"""Converting a data dir written by the writer before Delta (tests/fixtures/old_layout, made
by that writer), and the history / restore / vacuum commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dataset import DataDir
from extractor.rowhash import row_hashes
from extractor.schemas import DATASETS

OLD = Path(__file__).parent / "fixtures" / "old_layout"


def old_rows(name: str) -> list[tuple]:
    """The rows as the old files hold them (read with pyarrow, not with our code)."""
    files = sorted((OLD / "raw" / name).rglob("part.parquet"))
    if not files:
        return []
    table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    return sorted(tuple(sorted((k, repr(v)) for k, v in row.items())) for row in table.to_pylist())


def invoke(data_dir: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "-q", *args], catch_exceptions=False)


def test_migrate_converts_every_row_and_the_state(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(OLD, data_dir)
    state = json.loads((OLD / "state" / "state.json").read_text())
    result = invoke(data_dir, "migrate")
    assert result.exit_code == 0, result.output
    assert "converted " in result.output and "premium_usage (4 rows)" in result.output
    assert "row hashes upgraded: " in result.output
    dd = DataDir(data_dir)
    for name in DATASETS:
        want = old_rows(name)
        got = dd.read(name)
        assert got.num_rows == len(want), name
        if want:  # every column of every row, extra columns included; the row hashes recomputed
            old_names = set(pq.read_schema(next((OLD / "raw" / name).rglob("part.parquet"))).names) - {"_row_hash"}
            assert sorted(tuple(sorted((k, repr(v)) for k, v in r.items() if k in old_names))
                          for r in got.to_pylist()) == sorted(tuple(c for c in row if c[0] != "_row_hash") for row in want), name
            assert got.column("_row_hash").to_pylist() == row_hashes(DATASETS[name], got).to_pylist(), name
            assert not set(got.column("_row_hash").to_pylist()) & {dict(row)["_row_hash"].strip("'") for row in want}
    assert dd.read_state()["datasets"] == state["datasets"]
    assert dd.read_state()["last_run"] == state["last_run"]
    assert not list((data_dir / "raw").rglob("part.parquet")) and not list((data_dir / "raw").rglob("schema.parquet"))
    assert not (data_dir / "state" / "state.json").exists()
    assert "nothing to convert" in invoke(data_dir, "migrate").output  # done once
    assert sorted(dd.read("user_metadata").column("badge_color").to_pylist()) == ["blue", "red"]  # an extra column


def test_any_writing_command_converts_on_first_use(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(OLD, data_dir)
    csv = tmp_path / "meta.csv"
    csv.write_text("email,department\nz@x.com,Ops\n")
    assert invoke(data_dir, "import", "--kind", "metadata", str(csv)).exit_code == 0
    dd = DataDir(data_dir)
    assert dd.read("premium_usage").num_rows == 4
    assert dd.read("user_metadata").column("email").to_pylist() == ["z@x.com"]


def test_history_and_restore_commands(tmp_path):
    data_dir = tmp_path / "data"
    shutil.copytree(OLD, data_dir)
    invoke(data_dir, "migrate")
    bad = tmp_path / "bad.csv"
    bad.write_text("email,department\nwrong@x.com,Nope\n")
    assert invoke(data_dir, "import", "--kind", "metadata", str(bad)).exit_code == 0
    out = json.loads(invoke(data_dir, "history", "user_metadata", "--json").output)["user_metadata"]
    assert out[0]["sources"] == ["bad.csv"] and out[0]["rows_added"] == 1 and out[0]["rows_removed"] == 2
    assert out[0]["command"] == "import"
    assert out[1]["command"] == "upgrade row hashes to version 2"  # after the conversion, same rows
    assert out[1]["rows_added"] == 0 and out[1]["rows_removed"] == 0
    assert out[2]["command"] == "migrate"
    text = invoke(data_dir, "history", "user_metadata").output
    assert "bad.csv" in text and "+1" in text and "-2" in text
    result = invoke(data_dir, "restore", "user_metadata", "--version", str(out[1]["version"]))
    assert result.exit_code == 0, result.output
    assert sorted(DataDir(data_dir).read("user_metadata").column("email").to_pylist()) == ["a@x.com", "b@x.com"]
    assert invoke(data_dir, "vacuum", "--retention-hours", "0").exit_code == 0
    assert sorted(DataDir(data_dir).read("user_metadata").column("email").to_pylist()) == ["a@x.com", "b@x.com"]


def test_a_bad_import_restored_away_gives_the_marts_of_before(tmp_path):
    import sys

    import duckdb

    sys.path.insert(0, str(Path(__file__).parent / "dbt"))
    from dbt_rawdata import write_tiny_dataset

    from extractor.build import run_build
    from extractor.config import Settings

    def marts() -> dict[str, list]:
        """Every mart's rows (the run's own timestamps aside)."""
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
        try:
            out = {}
            for (name,) in con.execute("select table_name from information_schema.tables "
                                       "where table_schema = 'marts' order by 1").fetchall():
                columns = [c for (c,) in con.execute(
                    "select column_name from information_schema.columns where table_schema = 'marts' "
                    f"and table_name = '{name}' and column_name not in ('extracted_at', 'built_at')").fetchall()]
                out[name] = sorted(map(repr, con.execute(f"select {', '.join(columns)} from marts.{name}").fetchall()))
            return out
        finally:
            con.close()

    write_tiny_dataset(tmp_path / "raw")
    settings = Settings(data_dir=tmp_path, quiet=True)
    select = ["+dim_users", "+fct_daily_usage"]
    run_build(settings, select=select)
    before = marts()
    good = DataDir(tmp_path).table("user_metadata").version()
    bad = tmp_path / "metadata.csv"
    bad.write_text("email,department,cost_center\nalice@example.com,Wrong,CC0\n")
    assert invoke(tmp_path, "import", "--kind", "metadata", str(bad)).exit_code == 0
    run_build(settings, select=select)
    assert marts() != before  # the bad file changed the users' departments
    assert invoke(tmp_path, "restore", "user_metadata", "--version", str(good)).exit_code == 0
    run_build(settings, select=select, full_refresh=True)
    assert marts() == before


def test_a_data_dir_of_the_md5_row_hash_is_upgraded_and_a_reimport_adds_nothing(tmp_path):
    # A data dir of the release before row hash version 2: the same rows, each with the md5 of
    # its text as _row_hash, and commits that do not name a row hash version.
    import hashlib

    from deltalake import CommitProperties, DeltaTable, write_deltalake

    from extractor.dataset import STATE_KEY

    data_dir = tmp_path / "data"
    csv = tmp_path / "usage.csv"
    csv.write_text("team_alias,email,day_used,product_name,tokens_used\n"
                   + "".join(f"T,u{i}@x.example,2026-0{1 + i % 2}-1{i % 9},P{i % 4},{i % 3}\n" for i in range(300)))
    assert invoke(data_dir, "import", str(csv)).exit_code == 0
    uri = DataDir(data_dir).table_uri("premium_usage_files")
    table = DeltaTable(uri).to_pyarrow_dataset().to_table()
    md5 = [hashlib.md5(repr(sorted(r.items())).encode()).hexdigest() for r in table.drop_columns(["_row_hash"]).to_pylist()]
    old = table.set_column(table.schema.get_field_index("_row_hash"), "_row_hash", pa.array(md5))
    state = {"state": {"cursor": "2026-02-19"}, "command": "import", "last_run": {"sources": ["usage.csv"]}}
    write_deltalake(uri, old, mode="overwrite",
                    commit_properties=CommitProperties(custom_metadata={STATE_KEY: json.dumps(state)}))

    result = invoke(data_dir, "import", str(csv))  # the same file again
    assert result.exit_code == 0, result.output
    dd = DataDir(data_dir)
    got = dd.read("premium_usage_files")
    assert got.num_rows == 300
    assert got.column("_row_hash").to_pylist() == row_hashes(DATASETS["premium_usage_files"], got).to_pylist()
    assert not set(got.column("_row_hash").to_pylist()) & set(md5)
    history = dd.history("premium_usage_files")
    assert [h["command"] for h in history[:2]] == ["import", "upgrade row hashes to version 2"]
    assert history[0]["rows_added"] == 0
    assert dd.read_state()["datasets"]["premium_usage_files"] == {"cursor": "2026-02-19"}  # the state carried over
    assert "nothing to convert" in invoke(data_dir, "migrate").output  # upgraded once
