"""Staging a write (extractor/staging.py) and committing it: the row hash is the documented
version 2 (extractor/rowhash.py), duplicates within a transaction are dropped on the way (the
first write's row kept), and a re-import adds only the rows the table does not hold yet (the
row already there stays)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from extractor import staging
from extractor.dataset import DataDir, Replace
from extractor.rowhash import row_hashes
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
    """Every row, written to Parquet and read back, keyed by its row hash; of equal hashes the
    first write's row wins; returns (hash, source)."""
    spec = DATASETS[dataset]
    first: dict[str, str] = {}
    for i, (table, source) in enumerate(tables):
        path = dd.root / f"reference-{i}.parquet"
        pq.write_table(table, path)
        for h in row_hashes(spec, pq.read_table(path)).to_pylist():
            first.setdefault(h, source)
    return sorted(first.items())


def hashes_and_sources(dd: DataDir, dataset: str = "premium_usage_files") -> list[tuple]:
    return sorted((r["_row_hash"], r["_source"]) for r in dd.read(dataset).to_pylist())


MASK = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def documented_hash(row: dict, types: dict[str, pa.DataType]) -> str:
    """extractor/rowhash.py's definition, in plain Python, one row at a time."""
    import struct

    lanes = [0, 0]
    for name, value in row.items():
        if value is None or name not in types:
            continue
        kind = types[name]
        if pa.types.is_string(kind):
            cell = struct.unpack("<2Q", hashlib.md5(name.encode() + b"\x1f" + value.encode()).digest())
        else:
            if pa.types.is_floating(kind):
                tag, bits = "float", struct.unpack("<Q", struct.pack("<d", value + 0.0))[0]
            elif pa.types.is_boolean(kind):
                tag, bits = "bool", int(value)
            elif pa.types.is_integer(kind):
                tag, bits = "int", value & MASK
            elif pa.types.is_date(kind):
                tag, bits = "date", (value - date(1970, 1, 1)).days & MASK
            else:
                tag, bits = "timestamp", ((value - datetime(1970, 1, 1, tzinfo=UTC)) // __import__("datetime").timedelta(microseconds=1)) & MASK
            keys = struct.unpack("<2Q", hashlib.md5(name.encode() + b"\x1f" + tag.encode()).digest())
            cell = (splitmix64(bits ^ keys[0]), splitmix64(bits ^ keys[1]))
        lanes = [(lanes[0] + cell[0]) & MASK, (lanes[1] + cell[1]) & MASK]
    return struct.pack("<2Q", *lanes).hex()


def test_row_hash_is_version_2_as_documented(tmp_path):
    dd = DataDir(tmp_path)
    spec = DATASETS["tokenflex_contracts"]
    row = {"contract_number": "C1", "contract_start_date": date(2026, 1, 5), "is_active": True,
           "provisioned_tokens": 12.0, "contract_year": 2026, "contract_name": None}
    write(dd, pa.Table.from_pylist([row]), "contracts.csv", dataset="tokenflex_contracts")
    got = dd.read("tokenflex_contracts").column("_row_hash").to_pylist()
    assert got == [documented_hash(row, spec.columns)]
    # Pinned: stored hashes must never change silently. A new value needs a new
    # ROW_HASH_VERSION, whose upgrade recomputes every stored hash (DataDir.upgrade_row_hashes).
    assert got == ["83743741f2fd015463362833a7035c0e"]


def test_row_hash_of_every_type_is_the_documented_one_whatever_the_batches(tmp_path):
    dd = DataDir(tmp_path)
    spec = DATASETS["tokenflex_usage"]
    table = pa.table({
        "contract_number": ["C1", "C2", "C'3", None, "C1", "Ü\u00a0é"],
        "usage_date": pa.array([date(2026, 1, 5), date(2026, 1, 6), date(1999, 12, 31), date(2026, 2, 28),
                                date(2026, 1, 5), date(2026, 3, 1)]),
        "tokens_consumed": [0.0, -0.0, 1e20, -0.1, None, 1 / 3],
        "contract_year": pa.array([1, None, 2026, -5, 1, 0], pa.int64()),
        "session_start_date": pa.array([datetime(2026, 1, 5, 10, 20, 30, tzinfo=UTC), None,
                                        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), None, None,
                                        datetime(2026, 3, 1, tzinfo=UTC)], pa.timestamp("us", "UTC")),
        "note": ["an extra column", "is", "not", "hashed", "at", "all"],
    })
    write(dd, table.to_batches(max_chunksize=2), "usage.csv", dataset="tokenflex_usage")
    rows = table.drop_columns(["note"]).to_pylist()
    expected = {documented_hash(r, spec.columns) for r in rows}
    assert set(dd.read("tokenflex_usage").column("_row_hash").to_pylist()) == expected
    assert len(expected) == 6  # -0.0 and 0.0 are one value, but these rows differ in other columns
    # whatever the arrays look like: one batch, many chunks, dictionary-encoded text
    one = row_hashes(spec, table)
    chunked = row_hashes(spec, pa.Table.from_batches(table.to_batches(max_chunksize=1)))
    encoded = row_hashes(spec, table.set_column(0, "contract_number", pc.dictionary_encode(table.column(0))))
    assert one.to_pylist() == chunked.to_pylist() == encoded.to_pylist() == [documented_hash(r, spec.columns) for r in rows]
    # a NULL cell and a missing column hash alike
    assert row_hashes(spec, table.drop_columns(["contract_year"])).to_pylist()[1] == one.to_pylist()[1]


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
    monkeypatch.setattr(staging, "first_lane", lambda bits: np.zeros(len(bits), dtype=np.uint64))
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

    monkeypatch.setattr(rowhash, "hash_bits", first_half_zero)  # the stored hashes
    real_rows = rowhash.RowHasher.bits

    def incoming_first_half_zero(self, table):
        bits = real_rows(self, table)
        bits[:, 0] = 0
        return bits

    monkeypatch.setattr(rowhash.RowHasher, "bits", incoming_first_half_zero)
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
    from extractor.rowhash import hash_bits

    bits = hash_bits(pa.array([hashlib.md5(str(i).encode()).hexdigest() for i in range(10)]))
    names = iter(range(100))
    spool = staging._RowFile(lambda: tmp_path / f"spool-{next(names)}")
    spool.add(staging._bits_table(np.concatenate([bits[:6], bits[:2]])))
    spool.add(staging._bits_table(bits[4:]))
    spool.close()
    keep = staging._first_of_equal_rows(spool.all_batches)
    assert keep.tolist() == [True] * 6 + [False, False] + [False, False, True, True, True, True]
    unique = staging._RowFile(lambda: tmp_path / f"spool-{next(names)}")
    unique.add(staging._bits_table(bits))
    unique.close()
    assert staging._first_of_equal_rows(unique.all_batches) is None


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


def test_a_reimport_spools_nothing_and_reads_no_stored_hash_at_commit(tmp_path, monkeypatch):
    # the rows already stored are dropped while staging (the month's hashes loaded once), so
    # the commit neither reads the month's hashes nor any row back
    dd = DataDir(tmp_path)
    rows = usage_rows(3_000)
    write(dd, rows, "first.csv")
    loads = []
    real_known = staging.Known

    def counting_known(version, load, rows, files):
        return real_known(version, lambda month: loads.append(month) or load(month), rows, files)

    monkeypatch.setattr("extractor.dataset.Known", counting_known)
    spooled, written = [], []
    real_add, real_write = staging._RowFile.add, staging.MonthFile.write
    monkeypatch.setattr(staging._RowFile, "add", lambda self, table: spooled.append(table.num_rows) or real_add(self, table))
    monkeypatch.setattr(staging.MonthFile, "write", lambda self, table: written.append(table.num_rows) or real_write(self, table))
    write(dd, pa.concat_tables([rows, usage_rows(7, start=9_000)]).to_batches(max_chunksize=500), "again.csv")
    assert sorted(loads) == ["2026-01", "2026-02", "2026-03"]  # each month's stored hashes once
    assert sum(written) == 7  # only the 7 new rows were written (to their months' files)...
    assert sum(spooled) == 7  # ...and their hashes spooled, nothing else
    assert dd.read("premium_usage_files").num_rows == 3_007
    assert dd.history("premium_usage_files")[0]["rows_added"] == 7


def test_rows_dropped_while_staging_are_not_lost_when_another_writer_removes_them(tmp_path):
    # Another machine deletes a month between this run's staging (which dropped the rows the
    # month held) and its commit: the commit refuses rather than lose those rows.
    from deltalake import DeltaTable

    from extractor.errors import LockedError

    dd = DataDir(tmp_path)
    rows = usage_rows(600)
    write(dd, rows, "first.csv")
    with pytest.raises(LockedError, match="another writer removed or rewrote rows of 2026-0"):
        with dd.lock("test"), dd.transaction() as tx:
            tx.write("premium_usage_files", pa.concat_tables([rows, usage_rows(5, start=900)]), source="again.csv")
            DeltaTable(dd.table_uri("premium_usage_files")).delete("_month = '2026-02'")
    assert dd.read("premium_usage_files").num_rows == 400  # the other writer's delete, nothing of ours
    write(dd, pa.concat_tables([rows, usage_rows(5, start=900)]), "again.csv")  # run again: complete
    assert keyed(dd.read("premium_usage_files").select(rows.column_names)) == keyed(
        pa.concat_tables([rows, usage_rows(5, start=900)]))


def test_rows_another_writer_added_meanwhile_are_not_added_twice(tmp_path):
    from deltalake import write_deltalake

    from extractor.dataset import MONTH_COLUMN, table_schema

    dd = DataDir(tmp_path)
    rows = usage_rows(600)
    write(dd, rows.slice(0, 300), "first.csv")
    spec = DATASETS["premium_usage_files"]
    theirs = rows.slice(300, 100)  # another machine appends these after this run staged them as new
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage_files", rows, source="mine.csv")
        full = staging._MonthFiles(spec, None, "theirs.csv", tx.extracted_at)._in_layout(
            theirs.append_column("_row_hash", row_hashes(spec, theirs)))
        months = pa.array([d.strftime("%Y-%m") for d in theirs.column("usage_date").to_pylist()])
        write_deltalake(dd.table_uri("premium_usage_files"),
                        full.append_column(MONTH_COLUMN, months).cast(table_schema(spec)), mode="append")
    got = dd.read("premium_usage_files")
    assert got.num_rows == 600
    assert keyed(got.select(rows.column_names)) == keyed(rows)
    assert sorted(set(got.column("_source").to_pylist())) == ["first.csv", "mine.csv", "theirs.csv"]


def test_a_reimport_past_the_known_hashes_limit_compares_the_other_months_at_commit(tmp_path, monkeypatch):
    # 3 months of 1,000 stored rows, at most 1,500 stored hashes held while staging: one month
    # is compared while staging, the other two by the commit; each way adds only the new rows
    monkeypatch.setattr(staging, "KNOWN_ROWS_LIMIT", 1_500)
    dd = DataDir(tmp_path)
    rows = usage_rows(3_000)
    write(dd, rows, "first.csv")
    loads = []
    real_known = staging.Known
    monkeypatch.setattr("extractor.dataset.Known", lambda version, load, rows, files: real_known(
        version, lambda month: loads.append(month) or load(month), rows, files))
    new = usage_rows(30, start=7_000)
    write(dd, pa.concat_tables([rows, new]).to_batches(max_chunksize=400), "again.csv")
    assert len(loads) == 1  # the month met first; the others went to the commit
    got = dd.read("premium_usage_files")
    assert got.num_rows == 3_030
    assert keyed(got.select(rows.column_names)) == keyed(pa.concat_tables([rows, new]))
    assert dd.history("premium_usage_files")[0]["rows_added"] == 30


def _small_flushes(monkeypatch) -> None:
    """Flushes of a few hundred rows, each written straight to its month's file."""
    monkeypatch.setattr(staging, "STAGING_ROW_GROUP", 400)
    monkeypatch.setattr(staging, "STAGING_BUFFER_ROWS", 900)
    monkeypatch.setattr(staging, "DIRECT_ROWS", 250)


def _count_rewrites(monkeypatch) -> list[str]:
    """Months whose file the commit wrote (not the one written while staging)."""
    from extractor.dataset import Transaction

    rewritten: list[str] = []
    real = Transaction._write_month_file
    monkeypatch.setattr(Transaction, "_write_month_file",
                        lambda self, dt, spec, schema, month, tables: rewritten.append(month) or real(
                            self, dt, spec, schema, month, tables))
    return rewritten


@pytest.mark.parametrize("slots_log2", [27, 5])
def test_an_append_commits_the_files_written_while_staging(tmp_path, monkeypatch, slots_log2):
    # 5: 32 slots for 6,000 rows, so nearly every row waits for the end of the input and is
    # compared by its full hash there; the repeats go either way, and no file is written twice
    _small_flushes(monkeypatch)
    monkeypatch.setattr(staging, "SEEN_SLOTS_LOG2", slots_log2)
    rewritten = _count_rewrites(monkeypatch)
    dd = DataDir(tmp_path)
    rows = usage_rows(6_000)
    doubled = pa.concat_tables([rows, rows.slice(5_000, 1_000), rows.slice(10, 200), rows.slice(10, 5)])
    write(dd, doubled.to_batches(max_chunksize=350), "usage.csv")
    assert rewritten == []
    assert keyed(dd.read("premium_usage_files").select(rows.column_names)) == keyed(rows)
    assert hashes_and_sources(dd) == reference(dd, "premium_usage_files", [(doubled, "usage.csv")])
    files = dd.data_files("premium_usage_files")
    assert len(files) == 3  # one a month
    groups = [pq.ParquetFile(f).metadata.num_row_groups for f in files]
    # a row group a flush; with 32 slots nearly all rows are written when the input ends
    assert all(g > 3 for g in groups) if slots_log2 == 27 else all(g < 3 for g in groups)
    assert not [p for p in (tmp_path / ".tmp").rglob("*") if p.is_file()]
    write(dd, doubled.to_batches(max_chunksize=350), "again.csv")  # every row there: nothing added
    assert dd.read("premium_usage_files").num_rows == 6_000


def test_a_column_that_appears_mid_write_is_kept_for_the_rows_that_have_it(tmp_path, monkeypatch):
    # the months' files were started without the column: the rows that bring it are spooled,
    # and the commit writes those months again with the column (NULL for the rows before)
    _small_flushes(monkeypatch)
    dd = DataDir(tmp_path)
    rows = usage_rows(3_000)
    later = usage_rows(1_500, start=3_000)
    later = later.append_column("cost_center", pa.array([f"CC{i % 3}" for i in range(later.num_rows)]))
    write(dd, [*rows.to_batches(max_chunksize=300), *later.to_batches(max_chunksize=300)], "usage.csv")
    got = dd.read("premium_usage_files")
    assert got.num_rows == 4_500
    by_user = dict(zip(got.column("user_id").to_pylist(), got.column("cost_center").to_pylist()))
    assert [by_user[f"U{i}"] for i in (0, 2_999)] == [None, None]
    assert [by_user[f"U{i}"] for i in (3_000, 3_001, 4_499)] == ["CC0", "CC1", "CC2"]
    assert keyed(got.select(rows.column_names)) == keyed(pa.concat_tables([rows, later.drop_columns(["cost_center"])]))


def test_a_staged_file_is_not_added_when_another_writer_filled_the_month_meanwhile(tmp_path, monkeypatch):
    # the table was empty while staging (nothing compared), another machine appends some of
    # the same rows before the commit: the month is written again without them
    from deltalake import write_deltalake

    from extractor.dataset import MONTH_COLUMN, table_schema

    rewritten = _count_rewrites(monkeypatch)
    dd = DataDir(tmp_path)
    spec = DATASETS["premium_usage_files"]
    rows = usage_rows(900)
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage_files", rows, source="mine.csv")
        theirs = rows.slice(0, 30)
        full = staging._MonthFiles(spec, None, "theirs.csv", tx.extracted_at)._in_layout(
            theirs.append_column("_row_hash", row_hashes(spec, theirs)))
        months = pa.array([d.strftime("%Y-%m") for d in theirs.column("usage_date").to_pylist()])
        write_deltalake(dd.table_uri("premium_usage_files"),
                        full.append_column(MONTH_COLUMN, months).cast(table_schema(spec)), mode="append")
    assert sorted(rewritten) == ["2026-01", "2026-02", "2026-03"]
    got = dd.read("premium_usage_files")
    assert got.num_rows == 900
    assert got.filter(pc.equal(got.column("_source"), "theirs.csv")).num_rows == 30


def test_seen_slots_give_each_slot_to_its_first_row_only():
    # 256 slots (the top 8 bits of the first lane): slots 3, 5 and 7 share one 64-bit word,
    # so setting them at once exercises the bits that a single write would lose
    slots = staging._SeenSlots(log2=8)
    lanes = lambda *top: np.array([[t << 56, i] for i, t in enumerate(top)], dtype=np.uint64)  # noqa: E731
    assert slots.take(lanes(3, 5, 3, 7, 5, 200)).tolist() == [True, True, False, True, False, True]
    assert slots.take(lanes(7, 9, 200, 3, 9)).tolist() == [False, True, False, False, False]
    assert slots.take(lanes(*range(10, 74))).all()  # a whole word's worth of new slots at once
    assert not slots.take(lanes(*range(10, 74))).any()


def test_a_month_staged_as_a_file_by_one_write_and_spooled_by_the_next_is_written_whole(tmp_path, monkeypatch):
    # two appends in one transaction: the first compares January with the stored rows while
    # staging and writes its file; the second meets February first, and may hold no more
    # stored hashes for January, which it spools. The commit writes January from both (the
    # file's text read back plain, the spool's missing text columns dictionary-encoded NULLs).
    monkeypatch.setattr(staging, "KNOWN_ROWS_LIMIT", 1_500)
    rewritten = _count_rewrites(monkeypatch)
    dd = DataDir(tmp_path)
    stored = usage_rows(2_000, months=2)
    write(dd, stored, "first.csv")
    january = pc.equal(pc.month(stored.column("usage_date")), 1)
    new = usage_rows(40, start=5_000, months=2)
    with dd.lock("test"), dd.transaction() as tx:
        tx.write("premium_usage_files", pa.concat_tables([stored.filter(january), new.slice(0, 20)]), source="a.csv")
        second = pa.concat_tables([stored.filter(pc.invert(january)), stored.filter(january), new.slice(20)])
        tx.write("premium_usage_files", second.to_batches(max_chunksize=300), source="b.csv")
    assert "2026-01" in rewritten
    got = dd.read("premium_usage_files")
    assert got.num_rows == 2_040
    assert keyed(got.select(stored.column_names)) == keyed(pa.concat_tables([stored, new]))
