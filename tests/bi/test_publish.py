"""`aps-usage publish`: every format read back and compared with the warehouse."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from bi_fixtures import FAKE_MARTS, HOSTILE_FORMULA, make_fake_warehouse, require_all
from click.testing import CliRunner

from extractor.cli import cli
from extractor.publish.hyper import hyper_available, read_hyper_row_counts
from extractor.publish.parquet_csv import FORMULA_TRIGGERS


def run_publish(data_dir: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "publish", *args], obj=None)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def warehouse_counts(data_dir: Path) -> dict[str, int]:
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM marts."{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def test_every_format_reads_back_with_the_marts_row_counts(fake_data_dir):
    data_dir, _ = fake_data_dir
    result = run_publish(data_dir)
    assert result.exit_code == 0, result.output
    counts = warehouse_counts(data_dir)
    assert set(counts) == set(FAKE_MARTS)

    for mart, rows in counts.items():
        assert pq.read_table(data_dir / "marts" / f"{mart}.parquet").num_rows == rows, mart
        raw = (data_dir / "marts" / f"{mart}.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf"), f"{mart}.csv has no UTF-8 BOM"
        assert b"\r\n" in raw
        assert len(read_csv(data_dir / "marts" / f"{mart}.csv")) == rows + 1, mart

    pbids = json.loads((data_dir / "bi" / "aps-usage.pbids").read_text(encoding="utf-8"))
    assert pbids["version"] == "0.1"
    [connection] = pbids["connections"]
    assert connection["details"]["protocol"] == "folder"
    assert connection["mode"] == "Import"
    assert Path(connection["details"]["address"]["path"]) == (data_dir / "marts").resolve()
    assert Path(connection["details"]["address"]["path"]).is_absolute()

    assert (data_dir / "bi" / "report.html").stat().st_size > 1_000_000  # plotly.js is inlined
    assert str(data_dir / "bi" / "report.html") in result.output

    if not hyper_available():
        if require_all():
            pytest.fail("pantab missing and APS_USAGE_REQUIRE_ALL=1")
        pytest.skip("pantab not installed: .hyper not checked")
    assert read_hyper_row_counts(data_dir / "bi" / "aps-usage.hyper") == counts


def test_parquet_csv_and_hyper_agree_on_values_and_types(fake_data_dir):
    data_dir, _ = fake_data_dir
    assert run_publish(data_dir, "--formats", "parquet,csv").exit_code == 0
    table = pq.read_table(data_dir / "marts" / "unmapped_users.parquet")
    # HUGEINT, DECIMAL(38) and lists are converted to types every BI tool reads
    assert str(table.schema.field("usage_days").type) == "int64"
    assert str(table.schema.field("big_decimal").type) == "double"
    assert table.column("sample_list").to_pylist() == ["1; 2", "2; 3", "3; 4"]
    rows = read_csv(data_dir / "marts" / "unmapped_users.csv")
    header, first = rows[0], dict(zip(rows[0], rows[1]))
    assert header == table.schema.names
    assert first["note"] == 'line one\nline "two", with comma'  # RFC 4180 quoting round-trips
    assert first["seen_at"] == "2026-11-20 10:00:00"
    assert first["big_decimal"] == "1.5"
    inactive = {r[0]: r for r in read_csv(data_dir / "marts" / "inactive_users.csv")[1:]}
    header = read_csv(data_dir / "marts" / "inactive_users.csv")[0]
    assert inactive["u4"][header.index("last_used_date")] == ""  # NULL -> empty cell
    assert inactive["u1"][header.index("last_used_date")] == "2026-09-02"  # ISO date


def test_csv_neutralises_formula_injection(fake_data_dir):
    data_dir, _ = fake_data_dir
    assert run_publish(data_dir, "--formats", "csv").exit_code == 0
    rows = read_csv(data_dir / "marts" / "inactive_users.csv")
    header, body = rows[0], rows[1:]
    by_user = {r[0]: dict(zip(header, r)) for r in body}
    assert by_user["u1"]["full_name"] == "'" + HOSTILE_FORMULA
    assert by_user["u1"]["offerings_assigned"] == "'-1+2"
    tricky = [dict(zip(rows[0], r))["tricky"] for rows in [read_csv(data_dir / "marts" / "unmapped_users.csv")]
              for r in rows[1:]]
    assert tricky == ["'@SUM(1+1)*cmd|' /C calc'!A0", "'\t=1+1", "'\r=1+1"]
    for path in (data_dir / "marts").glob("*.csv"):
        for row in read_csv(path):
            for cell in row:
                if not _is_number(cell):
                    assert not cell.startswith(FORMULA_TRIGGERS), f"{path.name}: live formula {cell!r}"
    # numbers stay numbers: a negative number in a numeric column is not prefixed
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    con.execute("CREATE OR REPLACE TABLE marts.signed AS SELECT -5 AS delta, -2.5 AS ratio, '-3' AS label")
    con.close()
    assert run_publish(data_dir, "--formats", "csv").exit_code == 0
    assert read_csv(data_dir / "marts" / "signed.csv")[1] == ["-5", "-2.5", "'-3"]


def test_missing_pantab_skips_hyper_with_install_hint_and_writes_the_rest(fake_data_dir, monkeypatch):
    data_dir, counts = fake_data_dir
    monkeypatch.setitem(sys.modules, "pantab", None)  # import pantab -> ImportError, as when not installed
    result = run_publish(data_dir)
    assert result.exit_code == 0, result.output
    assert "pip install 'aps-usage[tableau]'" in result.output
    assert not (data_dir / "bi" / "aps-usage.hyper").exists()
    assert len(list((data_dir / "marts").glob("*.parquet"))) == len(counts)
    assert (data_dir / "bi" / "report.html").exists() and (data_dir / "bi" / "aps-usage.pbids").exists()
    assert not (data_dir / "bi" / "aps-usage.twbx").exists()  # the workbook carries the extract: skipped too
    assert "skipped twbx" in result.output
    assert (data_dir / "bi" / "powerbi" / "aps-usage.pbip").exists()


def test_hyper_requested_without_pantab_is_an_error(fake_data_dir, monkeypatch):
    data_dir, _ = fake_data_dir
    monkeypatch.setitem(sys.modules, "pantab", None)
    result = run_publish(data_dir, "--formats", "hyper,csv")
    assert result.exit_code == 6
    assert "pip install 'aps-usage[tableau]'" in result.output
    assert not (data_dir / "bi" / "aps-usage.hyper").exists()


def test_bad_arguments_and_missing_warehouse_are_one_line_errors(tmp_path, fake_data_dir):
    data_dir, _ = fake_data_dir
    result = run_publish(data_dir, "--formats", "parquet,xlsx")
    assert result.exit_code == 2 and "xlsx" in result.output
    result = run_publish(tmp_path / "empty")
    assert result.exit_code == 6 and "aps-usage build" in result.output


def test_a_failing_mart_leaves_earlier_outputs_whole(fake_data_dir):
    data_dir, _ = fake_data_dir
    assert run_publish(data_dir, "--formats", "parquet,csv").exit_code == 0
    before = (data_dir / "marts" / "unmapped_users.csv").read_bytes()
    # a HUGEINT beyond BIGINT cannot be exported: publishing must fail cleanly, naming the mart
    make_fake_warehouse(data_dir / "warehouse.duckdb", {
        "unmapped_users": "SELECT 'x' AS user_key, 170141183460469231731687303715884105727::HUGEINT AS usage_days"})
    result = run_publish(data_dir, "--formats", "parquet,csv")
    assert result.exit_code == 6
    assert "unmapped_users" in result.output and len(result.output.strip().splitlines()) <= 4
    assert (data_dir / "marts" / "unmapped_users.csv").read_bytes() == before
    assert not [p for p in (data_dir / "marts").iterdir() if p.name.startswith(".")], "temp files left behind"


def test_files_of_a_dropped_mart_are_removed(fake_data_dir):
    data_dir, _ = fake_data_dir
    assert run_publish(data_dir, "--formats", "parquet,csv").exit_code == 0
    assert (data_dir / "marts" / "token_balance.parquet").exists()
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    con.execute("DROP TABLE marts.token_balance")
    con.close()
    assert run_publish(data_dir, "--formats", "parquet,csv").exit_code == 0
    assert not (data_dir / "marts" / "token_balance.parquet").exists()
    assert not (data_dir / "marts" / "token_balance.csv").exists()
    assert (data_dir / "marts" / "flex_overuse.parquet").exists()


def test_publish_help_lists_the_formats():
    result = CliRunner().invoke(cli, ["publish", "--help"], obj=None)
    assert result.exit_code == 0
    for fmt in ("parquet", "csv", "hyper", "pbids", "html"):
        assert fmt in result.output


def test_a_warehouse_locked_by_a_build_is_a_one_line_error(fake_data_dir):
    data_dir, _ = fake_data_dir
    import multiprocessing

    ready, done = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_write_lock, args=(str(data_dir / "warehouse.duckdb"), ready, done))
    holder.start()
    try:
        assert ready.wait(30)
        result = run_publish(data_dir, "--formats", "csv")
    finally:
        done.set()
        holder.join(30)
    assert result.exit_code == 6
    assert "is a build running?" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _hold_write_lock(path: str, ready, done) -> None:
    con = duckdb.connect(path)  # a writer in another process, as dbt during a build
    ready.set()
    done.wait(30)
    con.close()
