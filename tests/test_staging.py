"""Staging a write (extractor/staging.py) and committing it: the row hash keeps its value,
duplicates within a transaction are dropped on the way (the first write's row kept), and a
re-import adds only the rows the table does not hold yet (the row already there stays)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from extractor import staging
from extractor.dataset import DataDir, Replace, full_schema
from extractor.rowhash import hash_expr
from extractor.schemas import DATASETS


def usage_rows(n: int, start: int = 0, months: int = 3) -> pa.Table:
    """Distinct usage rows spread over ``months`` months."""
    ids = range(start, start + n)
    return pa.table({
        "usage_date": pa.array([date(2026, 1 + i % months, 1 + i % 28) for i in ids]),
        "product_name": pa.array([f"Product {i % 40}" for i in ids]),
        "user_id": pa.array([f"U{i}" for i in ids]),
        "tokens": pa.array([float(i % 7) for i in ids]),
        "seat_quantity": pa.array([i % 5 for i in ids], pa.int64()),
    })


def write(dd: DataDir, table, source: str, dataset: str = "premium_usage_files", replace: Replace | None = None):
    with dd.lock("test"), dd.transaction() as tx:
        tx.write(dataset, table, source=source, replace=replace)


def keyed(table: pa.Table) -> list[tuple]:
    """Rows without _extracted_at (a new one each run), sorted."""
    names = [n for n in table.column_names if n != "_extracted_at"]
    return sorted(tuple(str(r[n]) for n in names) for r in table.select(names).to_pylist())


def reference(dd: DataDir, dataset: str, tables: list[tuple[pa.Table, str]]) -> list[tuple]:
    """Every row through ``QUALIFY row_number() OVER (PARTITION BY _row_hash ORDER BY <write>) = 1``
    with the hash computed by DuckDB over Parquet (the first write's row wins); returns (hash, source)."""
    spec = DATASETS[dataset]
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    parts = []
    for i, (table, source) in enumerate(tables):
        path = dd.root / f"reference-{i}.parquet"
        pq.write_table(table, path)
        parts.append(f"SELECT *, {hash_expr(spec, set(table.column_names))} AS _row_hash, '{source}' AS _source, {i} AS _write "
                     f"FROM read_parquet('{path}')")
    rows = con.execute(
        f"SELECT _row_hash, _source FROM ({' UNION ALL BY NAME '.join(parts)}) "
        "QUALIFY row_number() OVER (PARTITION BY _row_hash ORDER BY _write) = 1"
    ).fetchall()
    return sorted(rows)


def hashes_and_sources(dd: DataDir, dataset: str = "premium_usage_files") -> list[tuple]:
    return sorted((r["_row_hash"], r["_source"]) for r in dd.read(dataset).to_pylist())


def test_row_hash_is_the_md5_it_always_was(tmp_path):
    dd = DataDir(tmp_path)
    row = {"contract_number": "C1", "contract_start_date": date(2026, 1, 5), "is_active": True,
           "provisioned_tokens": 12.0, "contract_year": 2026, "contract_name": None}
    write(dd, pa.Table.from_pylist([row]), "contracts.csv", dataset="tokenflex_contracts")
    text = "\x1f".join(["contract_number=C1", "contract_start_date=2026-01-05", "contract_year=2026",
                        "is_active=true", "provisioned_tokens=12.0"])  # sorted by name, NULLs left out
    assert dd.read("tokenflex_contracts").column("_row_hash").to_pylist() == [hashlib.md5(text.encode()).hexdigest()]


def test_row_hash_is_the_same_as_duckdb_over_parquet_for_every_type(tmp_path):
    dd = DataDir(tmp_path)
    spec = DATASETS["tokenflex_contracts"]
    table = pa.table({
        "contract_number": ["C1", "C2", "C'3", None],
        "contract_start_date": pa.array([date(2026, 1, 5), None, date(1999, 12, 31), date(2026, 2, 28)]),
        "is_active": [True, False, None, True],
        "provisioned_tokens": [0.0, 1.5, 1e20, -0.1],
        "consumed_tokens": [1 / 3, None, 2500000000000000.0, 7.0],
        "contract_year": pa.array([1, None, 2026, -5], pa.int64()),
        "note": ["an extra column", "is", "not", "hashed"],
    })
    write(dd, table, "contracts.csv", dataset="tokenflex_contracts")
    path = tmp_path / "input.parquet"
    pq.write_table(table.cast(pa.schema([full_schema(spec).field(n) if n in spec.columns else table.schema.field(n)
                                          for n in table.column_names])), path)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    expected = sorted(r[0] for r in con.execute(
        f"SELECT {hash_expr(spec, set(table.column_names))} FROM read_parquet('{path}')").fetchall())
    assert sorted(dd.read("tokenflex_contracts").column("_row_hash").to_pylist()) == expected


def test_a_new_month_is_deduplicated_within_the_file(tmp_path):
    dd = DataDir(tmp_path)
    rows = usage_rows(1_000)
    doubled = pa.concat_tables([rows, rows.slice(0, 300), rows.slice(10, 5)])  # 305 repeats
    write(dd, doubled.to_batches(max_chunksize=128), "usage.csv")
    got = dd.read("premium_usage_files")
    assert got.num_rows == 1_000
    assert len(set(got.column("_row_hash").to_pylist())) == 1_000
    assert keyed(got.select(rows.column_names)) == keyed(rows)
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(doubled, "usage.csv")])
    for path in dd.data_files("premium_usage_files"):  # the partition layout, every listed column
        assert pq.read_schema(path).names[: len(DATASETS["premium_usage_files"].columns)] == list(
            DATASETS["premium_usage_files"].columns)


def test_rows_whose_first_64_bits_collide_are_told_apart_by_the_full_hash(tmp_path, monkeypatch):
    # every row gets the same 64-bit key: all are compared by their full hash, and only the
    # real repeats go
    monkeypatch.setattr(staging, "first_64_bits", lambda hashes: np.zeros(len(hashes), dtype=np.uint64))
    dd = DataDir(tmp_path)
    rows = usage_rows(5_000)
    doubled = pa.concat_tables([rows, rows.slice(100, 50)])
    write(dd, doubled.to_batches(max_chunksize=700), "usage.csv")
    assert keyed(dd.read("premium_usage_files").select(rows.column_names)) == keyed(rows)
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(doubled, "usage.csv")])


def test_a_reimport_whose_hashes_collide_in_64_bits_adds_exactly_the_new_rows(tmp_path, monkeypatch):
    # the commit's lookup of the rows already there (rowhash.SeenHashes) with the first 64 bits
    # of every hash equal: each incoming row is told apart by the last 64
    import extractor.rowhash as rowhash

    dd = DataDir(tmp_path)
    rows = usage_rows(3_000)
    write(dd, rows.slice(0, 2_000), "first.csv")
    real_bits = rowhash.hash_bits

    def first_half_zero(hashes):
        bits = real_bits(hashes).copy()
        bits[:, 0] = 0
        return bits

    monkeypatch.setattr(rowhash, "hash_bits", first_half_zero)
    monkeypatch.setattr(staging, "hash_bits", first_half_zero)
    write(dd, rows.slice(1_000), "second.csv")  # 1,000 rows already there, 1,000 new
    got = dd.read("premium_usage_files")
    assert keyed(got.select(rows.column_names)) == keyed(rows)
    assert dd.history("premium_usage_files")[0]["rows_added"] == 1_000


def test_seen_hashes_tells_new_from_known_across_adds():
    from extractor.rowhash import SeenHashes, hash_bits

    md5 = [hashlib.md5(str(i).encode()).hexdigest() for i in range(1_000)]
    twin = md5[7][:16] + "0" * 16  # the first 64 bits of a known hash, another full hash
    seen = SeenHashes(pa.array(md5[:400]))
    assert len(seen) == 400
    assert seen.absent_bits(hash_bits(pa.array([md5[3], md5[500], twin, md5[399]]))).tolist() == [False, True, True, False]
    seen.add([pa.chunked_array([md5[400:600], md5[600:700]]), pa.array(md5[:0])])
    got = seen.absent_bits(hash_bits(pa.array(md5[650:750]))).tolist()
    assert got == [False] * 50 + [True] * 50
    assert SeenHashes().absent_bits(hash_bits(pa.array(md5[:3]))).tolist() == [True] * 3


def test_three_writes_of_one_month_in_one_commit_add_each_row_once(tmp_path):
    dd = DataDir(tmp_path)
    a, b, c = usage_rows(600), usage_rows(600, start=300), usage_rows(600, start=500)
    with dd.lock("test"), dd.transaction() as tx:
        for table, source in ((a, "a.csv"), (b, "b.csv"), (c, "c.csv")):
            tx.write("premium_usage_files", table.to_batches(max_chunksize=97), source=source)
    assert dd.read("premium_usage_files").num_rows == 1_100
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(a, "a.csv"), (b, "b.csv"), (c, "c.csv")])


def test_a_file_of_mostly_repeated_rows_keeps_each_row_once(tmp_path):
    dd = DataDir(tmp_path)
    rows = usage_rows(2_000)
    tripled = pa.concat_tables([rows, rows.slice(0, 700), rows, rows.slice(1_500, 20)])
    write(dd, tripled.to_batches(max_chunksize=300), "usage.csv")
    got = dd.read("premium_usage_files")
    assert got.num_rows == 2_000
    assert keyed(got.select(rows.column_names)) == keyed(rows)
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(tripled, "usage.csv")])


def test_duplicates_across_two_files_in_one_import_keep_the_first_source(tmp_path):
    dd = DataDir(tmp_path)
    a, b = usage_rows(600), usage_rows(600, start=400)  # 200 rows in both
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage_files", b, source="b.csv")
        tx.write("premium_usage_files", a, source="a.csv")
    assert dd.read("premium_usage_files").num_rows == 1_000
    # equal rows in one transaction: the first write's row is kept
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(b, "b.csv"), (a, "a.csv")])


def test_a_reimport_adds_only_new_rows_and_the_rows_already_there_stay(tmp_path):
    dd = DataDir(tmp_path)
    rows = usage_rows(2_000)
    write(dd, rows, "first.csv")
    before = dd.read("premium_usage_files")
    write(dd, pa.concat_tables([rows.slice(500), usage_rows(10, start=5_000)]), "second.csv")
    after = dd.read("premium_usage_files")
    assert after.num_rows == 2_010
    assert set(after.column("_row_hash").to_pylist()) >= set(before.column("_row_hash").to_pylist())
    sources = {}
    for r in after.to_pylist():
        sources[r["_source"]] = sources.get(r["_source"], 0) + 1
    assert sources == {"first.csv": 2_000, "second.csv": 10}  # an append of the 10 new rows, nothing rewritten
    assert dd.history("premium_usage_files")[0]["rows_added"] == 10


def test_an_empty_write_of_a_dataset_without_months_still_replaces_it(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, pa.table({"email": ["a@x"], "department": ["R&D"]}), "m1.csv", dataset="user_metadata",
          replace=Replace(everything=True))
    write(dd, pa.table({"email": pa.array([], pa.string())}), "m2.csv", dataset="user_metadata",
          replace=Replace(everything=True))
    assert dd.read("user_metadata").num_rows == 0
    assert dd.data_files("user_metadata") == []
    assert dd.history("user_metadata")[0]["rows_removed"] == 1


def test_first_of_equal_rows_across_spool_batches(tmp_path):
    hashes = [hashlib.md5(str(i).encode()).hexdigest() for i in range(10)]
    names = iter(range(100))
    spool = staging._RowFile(lambda: tmp_path / f"spool-{next(names)}")
    spool.add(pa.table({"_row_hash": hashes[:6] + hashes[:2]}))
    spool.add(pa.table({"_row_hash": hashes[4:]}))
    spool.close()
    keep = staging._first_of_equal_rows(spool)
    assert keep.tolist() == [True] * 6 + [False, False] + [False, False, True, True, True, True]
    unique = staging._RowFile(lambda: tmp_path / f"spool-{next(names)}")
    unique.add(pa.table({"_row_hash": hashes}))
    unique.close()
    assert staging._first_of_equal_rows(unique) is None


def test_extracted_at_and_source_are_the_writes(tmp_path):
    dd = DataDir(tmp_path)
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage_files", usage_rows(10), source="usage.csv")
        at = tx.extracted_at
    got = dd.read("premium_usage_files")
    assert set(got.column("_source").to_pylist()) == {"usage.csv"}
    assert set(got.column("_extracted_at").to_pylist()) == {at}
    assert at.tzinfo is not None and at.astimezone(UTC) <= datetime.now(UTC)


def test_a_csv_of_many_blocks_and_batches_imports_every_row_once(tmp_path, monkeypatch):
    from extractor.config import Settings
    from extractor.importing import import_paths, readers

    monkeypatch.setattr(readers, "CSV_BLOCK_SIZE", 1 << 16)  # ~20 blocks, each hashed beside the next read
    header = "team_alias,autodesk_id,email,day_used,product_name,offering_name,tokens_used"
    lines = [header] + [f"T,U{i},u{i}@x.example,2026-0{1 + i % 3}-{1 + i % 28:02d},P{i % 9},Flex,{i % 5}"
                        for i in range(20_000)]
    path = tmp_path / "usage.csv"
    path.write_text("\n".join(lines + lines[1:1_001]) + "\n")  # the first 1,000 rows twice
    report = import_paths(Settings(data_dir=tmp_path / "data", quiet=True), [path])
    assert report.rows == 21_000  # rows read
    dd = DataDir(tmp_path / "data")
    assert dd.read("premium_usage_files").num_rows == 20_000
    assert report.dataset_rows == {"premium_usage_files": 20_000}
    assert not list((tmp_path / "data" / ".tmp").iterdir())


def test_interleaved_months_make_one_file_per_month(tmp_path, monkeypatch):
    # Months come interleaved row by row, a few rows of each month per flush: each month is
    # spooled apart, and the commit writes one file a month.
    monkeypatch.setattr(staging, "STAGING_ROW_GROUP", 1_000)
    monkeypatch.setattr(staging, "STAGING_BUFFER_ROWS", 120)
    dd = DataDir(tmp_path)
    rows = usage_rows(12_345, months=4)
    write(dd, rows.to_batches(max_chunksize=97), "usage.csv")
    files = dd.data_files("premium_usage_files")
    assert len(files) == 4
    assert sorted(pq.ParquetFile(f).metadata.num_rows for f in files) == [3_086, 3_086, 3_086, 3_087]
    assert keyed(dd.read("premium_usage_files").select(rows.column_names)) == keyed(rows)
    assert not list((tmp_path / ".tmp").iterdir())


def test_a_failed_write_leaves_no_spool_behind(tmp_path):
    dd = DataDir(tmp_path)
    write(dd, usage_rows(500), "first.csv")
    before = keyed(dd.read("premium_usage_files"))

    def batches():
        yield from usage_rows(3_000, start=500).to_batches(max_chunksize=100)
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError, match="the input broke"):
        write(dd, batches(), "second.csv")
    assert keyed(dd.read("premium_usage_files")) == before
    assert not [p for p in (tmp_path / ".tmp").rglob("*") if p.is_file()]
