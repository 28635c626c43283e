"""Imports of every format and both naming schemes, checked against the dataset written."""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from extractor.config import Settings
from extractor.importing import import_paths, iter_files, read_table, read_tables
from tests.importing.conftest import (
    NEW_USAGE_HEADER,
    OLD_USAGE_HEADER,
    USAGE_ROWS,
    csv_text,
    gzip_bytes,
    us_date,
    write,
    xlsx_bytes,
    zip_bytes,
)

TOKENS = sum(float(r[8]) for r in USAGE_ROWS)


def _rows(table: pa.Table, *columns: str) -> list[tuple]:
    return sorted(tuple(r[c] for c in columns) for r in table.select(list(columns)).to_pylist())


def _expected_usage() -> list[tuple]:
    return sorted((r[2], dt.date.fromisoformat(r[5]), r[6], float(r[8])) for r in USAGE_ROWS)


def test_old_names_csv_typed_columns(run, files):
    path = write(files / "usage_old.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS))
    result = run("import", path)
    assert "usage_old.csv" in result.stdout and "premium_usage_files" in result.stdout and "4 rows" in result.stdout
    table = run.read("premium_usage_files")
    assert table.schema.field("usage_date").type == pa.date32()
    assert table.schema.field("tokens").type == pa.float64()
    assert _rows(table, "email", "usage_date", "product_name", "tokens") == _expected_usage()
    assert set(table["team_name"].to_pylist()) == {"New York Office", "Munich"}
    assert set(table["user_id"].to_pylist()) == {"U1", "U2", "U3"}
    assert set(table["_source"].to_pylist()) == {"usage_old.csv"}


def test_both_naming_schemes_give_the_same_rows(run, files):
    old = write(files / "old.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS))
    new_rows = [r[:5] + (us_date(r[5]),) + r[6:] for r in USAGE_ROWS]  # and US dates
    new = write(files / "Usage Report.csv", csv_text(NEW_USAGE_HEADER, new_rows))
    run("import", old)
    first = run.read("premium_usage_files")
    run("import", new)
    both = run.read("premium_usage_files")
    assert both.num_rows == first.num_rows == len(USAGE_ROWS)  # same rows, same hashes
    assert sorted(both["_row_hash"].to_pylist()) == sorted(first["_row_hash"].to_pylist())


def test_reimport_and_overlapping_files_add_no_duplicates(run, files):
    a = write(files / "a.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS[:3]))
    b = write(files / "b.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS[1:]))
    run("import", a)
    run("import", a)
    assert run.read("premium_usage_files").num_rows == 3
    run("import", a, b)
    table = run.read("premium_usage_files")
    assert table.num_rows == len(USAGE_ROWS)
    assert pc.sum(table["tokens"]).as_py() == pytest.approx(TOKENS)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252"])
def test_encodings(run, files, encoding):
    rows = [list(r) for r in USAGE_ROWS]
    rows[0][3] = "Anaïs"  # not ASCII: would break if decoded wrongly
    path = write(files / "usage.csv", csv_text(OLD_USAGE_HEADER, rows), encoding=encoding)
    if encoding in ("utf-16-le", "utf-16-be"):
        assert not path.read_bytes().startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    run("import", path)
    table = run.read("premium_usage_files")
    assert "Anaïs" in table["first_name"].to_pylist()
    assert _rows(table, "email", "usage_date", "product_name", "tokens") == _expected_usage()


def test_semicolon_decimal_comma_and_european_dates(run, files):
    rows = [r[:5] + (".".join(reversed(r[5].split("-"))),) + r[6:8] + (r[8].replace(".", ","),) + r[9:]
            for r in USAGE_ROWS]
    path = write(files / "usage_de.csv", csv_text(NEW_USAGE_HEADER, rows, delimiter=";"))
    run("import", path)
    assert _rows(run.read("premium_usage_files"), "email", "usage_date", "product_name", "tokens") == _expected_usage()


def test_tab_separated_with_title_lines_above_the_header(run, files):
    text = "Usage report\nGenerated 2026-02-02\n\n" + csv_text(NEW_USAGE_HEADER, USAGE_ROWS, delimiter="\t")
    run("import", write(files / "usage.tsv", text))
    assert run.read("premium_usage_files").num_rows == len(USAGE_ROWS)


def test_quoted_values_with_delimiters_and_newlines(run, files):
    rows = [list(r) for r in USAGE_ROWS]
    rows[0][0] = 'New York, "HQ"'
    rows[1][7] = "AEC\nCollection"
    run("import", write(files / "usage.csv", csv_text(OLD_USAGE_HEADER, rows)))
    table = run.read("premium_usage_files")
    assert 'New York, "HQ"' in table["team_name"].to_pylist()
    assert "AEC\nCollection" in table["offering_name"].to_pylist()


def test_unknown_columns_are_kept_as_text(run, files):
    header = OLD_USAGE_HEADER + ",Cost Centre Code,Seat Count Note"
    rows = [r + ("CC-1", "12") for r in USAGE_ROWS]
    run("import", write(files / "usage.csv", csv_text(header, rows)))
    table = run.read("premium_usage_files")
    assert table.schema.field("cost_centre_code").type == pa.string()
    assert table["seat_count_note"].to_pylist() == ["12"] * len(USAGE_ROWS)


def test_xlsx_one_sheet_per_report(run, files, caplog):
    usage_rows = [list(r[:5]) + [dt.date.fromisoformat(r[5])] + list(r[6:8]) + [float(r[8])] + list(r[9:])
                  for r in USAGE_ROWS]
    usage_rows[1][5] = 46028  # an Excel serial day number without date format: 2026-01-06
    book = xlsx_bytes({
        "Subscriptions": [["Team", "Subscription ID", "Offering", "Seat Quantity", "Status", "Start Date"],
                          ["New York Office", "S1", "AEC Collection", 10, "Active", dt.datetime(2025, 3, 1)],
                          ["Munich", "S2", "Flex", 1, "Active", "2025-04-01"]],
        "Users": [["Team", "Email", "Offering", "Role", "Status", "Assigned Date"],
                  ["New York Office", "ann@acme.example", "AEC Collection", "User", "Active", dt.date(2025, 3, 2)],
                  [], ["Munich", "bob@acme.example", "Flex", "User", "Active", None]],
        "Usage": [["Usage report (title row)"], NEW_USAGE_HEADER.split(","), *usage_rows],
        "Notes": [["These are notes"], ["nothing to import"]],
        "Empty": [],
    })
    result = run("import", write(files / "Premium Reports.xlsx", book))
    assert "Premium Reports.xlsx#Usage" in result.stdout
    assert "skipped Premium Reports.xlsx#Notes" in result.stdout
    assert "skipped Premium Reports.xlsx#Empty" in result.stdout
    assert _rows(run.read("premium_usage_files"), "email", "usage_date", "product_name", "tokens") == _expected_usage()
    subs = run.read("premium_subscriptions")
    assert _rows(subs, "subscription_id", "seat_quantity", "subscription_status", "start_date") == [
        ("S1", 10, "Active", dt.date(2025, 3, 1)), ("S2", 1, "Active", dt.date(2025, 4, 1))]
    users = run.read("premium_users")
    assert _rows(users, "email", "account_status", "assigned_date") == [
        ("ann@acme.example", "Active", dt.date(2025, 3, 2)), ("bob@acme.example", "Active", None)]


def test_zip_with_nested_zip_workbook_and_junk(run, files):
    inner = zip_bytes({"more/usage_2.csv": csv_text(OLD_USAGE_HEADER, USAGE_ROWS[2:])})
    archive = zip_bytes({
        "usage_1.csv": csv_text(OLD_USAGE_HEADER, USAGE_ROWS[:2]),
        "inner.zip": inner,
        "book.xlsx": xlsx_bytes({"Usage": [OLD_USAGE_HEADER.split(","), list(USAGE_ROWS[0])]}),
        "README.txt": "Exported from Autodesk Account.\nSee the help pages.\n",
        "__MACOSX/._usage_1.csv": b"\x00\x05\x16\x07junk",
    })
    result = run("import", write(files / "export.zip", archive))
    out = result.stdout
    assert "export.zip!usage_1.csv" in out and "export.zip!inner.zip!more/usage_2.csv" in out
    assert "export.zip!book.xlsx#Usage" in out and "skipped export.zip!README.txt" in out
    table = run.read("premium_usage_files")
    assert _rows(table, "email", "usage_date", "product_name", "tokens") == _expected_usage()
    assert "export.zip!inner.zip!more/usage_2.csv" in table["_source"].to_pylist()


def test_gzip_csv(run, files):
    run("import", write(files / "usage.csv.gz", gzip_bytes(csv_text(OLD_USAGE_HEADER, USAGE_ROWS))))
    assert run.read("premium_usage_files").num_rows == len(USAGE_ROWS)


def test_format_comes_from_bytes_not_extension(run, files):
    run("import", write(files / "usage.xlsx", csv_text(OLD_USAGE_HEADER, USAGE_ROWS)))  # really a CSV
    run("import", write(files / "more.csv", zip_bytes({"u.csv": csv_text(OLD_USAGE_HEADER, USAGE_ROWS)})))
    assert run.read("premium_usage_files").num_rows == len(USAGE_ROWS)


def test_header_only_imports_zero_rows(run, files):
    result = run("import", write(files / "empty_usage.csv", OLD_USAGE_HEADER + "\n"))
    assert "0 rows" in result.stdout
    assert run.read("premium_usage_files").num_rows == 0


TOKENFLEX_HEADER = "usageDate,contractYear,usageCategory,productName,userName,sessionStartDate,tokensConsumed,customField1"


def test_tokenflex_export_and_manual_adjustment_credits(run, files):
    rows = [
        ("2026-01-05", "1", "DESKTOP_PRODUCT", "Revit", "ann@acme.example", "2026-01-05T08:00:00", "10", "EMEA"),
        ("2026-01-05", "1", "CLOUD_SERVICE", "Rendering", "NT\\bob", "", "2.5", "AMER"),
        ("2026-01-31", "1", "MANUAL_ADJUSTMENT", "", "", "", "-5", ""),
    ]
    result = run("import", write(files / "tokenflex_export_1100.csv", csv_text(TOKENFLEX_HEADER, rows)))
    assert "tokenflex" in result.stdout and "tokenflex_usage" in result.stdout
    table = run.read("tokenflex_usage")
    assert pc.sum(table["tokens_consumed"]).as_py() == 7.5
    assert table.schema.field("session_start_date").type == pa.timestamp("us", tz="UTC")
    assert sorted(table["custom_field1"].drop_null().to_pylist()) == ["AMER", "EMEA"]
    assert table["contract_year"].to_pylist() == [1, 1, 1]


USERS_HEADER = "Team,Email,Offering,Role,Account Status"


def test_users_file_replaces_only_its_teams(run, files):
    first = [("NY", "ann@acme.example", "AEC Collection", "User", "Active"),
             ("NY", "old@acme.example", "AutoCAD", "User", "Active"),
             ("Munich", "bob@acme.example", "Flex", "User", "Active")]
    run("import", write(files / "users_all.csv", csv_text(USERS_HEADER, first)))
    run("import", write(files / "users_ny.csv", csv_text(USERS_HEADER, [first[0]])))
    assert _rows(run.read("premium_users"), "team_name", "email") == [("Munich", "bob@acme.example"),
                                                                       ("NY", "ann@acme.example")]


METADATA_HEADER = "Email,Department,Cost Center,Geo,Country,City,Skill Level,Project,Badge Colour"


def test_metadata_replaces_whole(run, files):
    run("import", write(files / "meta1.csv", csv_text(METADATA_HEADER, [
        ("ann@acme.example", "Arch", "CC-1", "AMER", "US", "NYC", "Expert", "P1;P2", "red"),
        ("bob@acme.example", "Eng", "CC-2", "EMEA", "DE", "Munich", "Novice", "P2", "blue")])))
    run("import", write(files / "meta2.xlsx", xlsx_bytes({"Users": [METADATA_HEADER.split(","),
        ["cy@acme.example", "Eng", "CC-2", "EMEA", "DE", "Munich", "Novice", "P3", "green"]]})))
    table = run.read("user_metadata")
    assert table["email"].to_pylist() == ["cy@acme.example"]
    assert table["cost_center"].to_pylist() == ["CC-2"] and table["badge_colour"].to_pylist() == ["green"]
    assert table["_source"].to_pylist() == ["meta2.xlsx#Users"]


def test_hash_personal_data(run, files):
    from extractor.personal import hash_value, load_salt

    run("import", "--hash-personal-data", write(files / "u.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS)))
    run("import", "--hash-personal-data", write(files / "tf.csv", csv_text(TOKENFLEX_HEADER, [
        ("2026-01-05", "1", "DESKTOP_PRODUCT", "Revit", " ANN@acme.example ", "", "10", "")])))
    salt = load_salt(run.data_dir / "state")  # the extractor's salt: imports and extractions join
    usage = run.read("premium_usage_files")
    ann = hash_value(salt, "ann@acme.example")
    assert ann != hashlib.sha256(b"ann@acme.example").hexdigest()
    assert ann in usage["email"].to_pylist()
    assert not any("@" in e for e in usage["email"].to_pylist())
    assert hash_value(salt, "Ann") in usage["first_name"].to_pylist()
    assert set(usage["user_id"].to_pylist()) == {"U1", "U2", "U3"}  # the O2 id is the key, not hashed
    assert run.read("tokenflex_usage")["user_name"].to_pylist() == [ann]  # joins still work


def test_masked_personal_data_is_null(run, files):
    rows = [("NY", "*****", "*****", "*****", "*****", r[5], r[6], r[7], r[8], r[9], r[10]) for r in USAGE_ROWS]
    run("import", write(files / "masked.csv", csv_text(OLD_USAGE_HEADER, rows)))
    table = run.read("premium_usage_files")
    assert table["email"].null_count == table["user_id"].null_count == len(USAGE_ROWS)


def test_kind_option_overrides_detection(run, files):
    # "Product" + "Date" alone fit usage; --kind names it anyway and the import checks the contract
    path = write(files / "x.csv", "Date,Product\n2026-01-05,Revit\n")
    assert "usage" in run("import", "--kind", "usage", path).stdout
    assert run.read("premium_usage_files").num_rows == 1


def test_sandbox_hand_download_files_both_namings(run, tmp_path):
    from extractor.sandbox.data import generate
    from extractor.sandbox.files import write_files

    data = generate(seed=7, users=20, days=40)
    write_files(data, tmp_path / "old", "old")
    write_files(data, tmp_path / "new", "2026")
    run("import", tmp_path / "old")
    first = {name: run.read(name).num_rows for name in
             ("premium_usage_files", "premium_users", "premium_subscriptions", "tokenflex_usage", "user_metadata")}
    assert first["premium_usage_files"] == data.usage.num_rows
    assert first["tokenflex_usage"] == data.tokenflex_usage.num_rows
    assert first["user_metadata"] == data.metadata.num_rows
    usage = run.read("premium_usage_files")
    assert pc.sum(usage["tokens"]).as_py() == pytest.approx(pc.sum(data.usage["tokens"]).as_py())
    tokenflex = run.read("tokenflex_usage")
    assert pc.sum(tokenflex["tokens_consumed"]).as_py() == pytest.approx(
        pc.sum(data.tokenflex_usage["tokens_consumed"]).as_py())
    run("import", tmp_path / "new")  # the 2026 names: the same rows, nothing added
    again = {name: run.read(name).num_rows for name in first}
    assert again == first


def test_status_after_import(run, files):
    run("import", write(files / "u.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS)))
    status = json.loads(run("status", "--json").stdout)
    by_name = {d["dataset"]: d for d in status["datasets"]}
    usage = by_name["premium_usage_files"]
    assert usage["rows"] == 4 and usage["min_date"] == "2026-01-05" and usage["max_date"] == "2026-02-01"
    assert usage["last_run_at"] and 0 <= usage["age_seconds"] < 600 and usage["last_run_sources"] == ["u.csv"]
    assert by_name["tokenflex_usage"]["rows"] == 0 and by_name["tokenflex_usage"]["last_run_at"] is None
    text = run("status").stdout
    assert "premium_usage_files" in text and "2026-02-01" in text


def test_status_without_data(run):
    assert "No data yet" in run("status").stdout
    assert json.loads(run("status", "--json").stdout)["datasets"] == []


def test_python_api(files):
    archive = write(files / "e.zip", zip_bytes({"a.csv": csv_text(OLD_USAGE_HEADER, USAGE_ROWS)}))
    got = read_table(archive)
    assert (got.kind, got.dataset, got.source, got.table.num_rows) == ("usage", "premium_usage_files", "e.zip!a.csv", 4)
    assert got.rows == [2, 3, 4, 5]
    named = read_table(archive, name="insights export 123")
    assert named.source == "insights export 123!a.csv"
    book = write(files / "b.xlsx", xlsx_bytes({"Users": [USERS_HEADER.split(","), ["NY", "a@x", "Flex", "User", "Active"]],
                                             "Usage": [OLD_USAGE_HEADER.split(","), list(USAGE_ROWS[0])]}))
    assert [name for name, _ in iter_files([book])] == ["b.xlsx#Users", "b.xlsx#Usage"]
    assert [(t.kind, t.source) for t in read_tables(book)] == [("users", "b.xlsx#Users"), ("usage", "b.xlsx#Usage")]


def test_import_paths_report(tmp_path, files):
    a = write(files / "a.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS))
    report = import_paths(Settings(data_dir=tmp_path / "d", quiet=True), [a])
    assert [(f.source, f.kind, f.rows) for f in report.files] == [("a.csv", "usage", 4)]
    assert report.dataset_rows == {"premium_usage_files": 4}


def test_progress_is_shown_for_an_import(tmp_path, files):
    from click.testing import CliRunner

    from extractor.cli import cli

    path = write(files / "u.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS))
    size = path.stat().st_size
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "d"), "import", str(path)], obj=None)
    assert result.exit_code == 0, result.output
    assert f"import u.csv done ({size}/{size})" in result.stderr


def test_a_quote_inside_an_unquoted_value_is_text(run, files):
    rows = [list(r) for r in USAGE_ROWS]
    rows[2][10] = '2025 27" screen'
    text = csv_text(OLD_USAGE_HEADER, rows).replace('"2025 27"" screen"', '2025 27" screen')
    assert '2025 27" screen' in text
    run("import", write(files / "inch.csv", text))
    assert '2025 27" screen' in run.read("premium_usage_files")["version"].to_pylist()


def test_folder_import_skips_what_is_not_a_table(run, files):
    write(files / "sub" / "usage.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS))
    write(files / "sub" / "notes.md", "# notes\nnothing here\n")
    write(files / "sub" / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(files / "sub" / "logo.png", b"\x89PNG\r\n\x1a\nxxxx")
    result = run("import", files / "sub")
    assert "sub/usage.csv" in result.stdout
    assert "skipped sub/notes.md" in result.stdout
    assert "sub/logo.png: skipped: unknown file type (PNG image)" in result.stderr
    assert "skipped sub/logo.png: unknown file type (PNG image)" in result.stdout
    assert run.read("premium_usage_files").num_rows == len(USAGE_ROWS)


def test_kind_given_skips_workbook_sheets_that_do_not_fit(run, files):
    book = xlsx_bytes({"Usage": [OLD_USAGE_HEADER.split(","), list(USAGE_ROWS[0])],
                       "Users": [USERS_HEADER.split(","), ["NY", "a@x", "Flex", "User", "Active"]]})
    result = run("import", "--kind", "usage", write(files / "b.xlsx", book))
    assert "b.xlsx#Usage" in result.stdout and "skipped b.xlsx#Users: required column 'usage_date'" in result.stdout
    assert run.read("premium_users").num_rows == 0


def test_import_json_report(run, files):
    a = write(files / "a.zip", zip_bytes({"a.csv": csv_text(OLD_USAGE_HEADER, USAGE_ROWS), "README.txt": "hello\n"}))
    report = json.loads(run("import", "--json", a).stdout)
    assert report["files"] == [{"source": "a.zip!a.csv", "kind": "usage", "dataset": "premium_usage_files", "rows": 4}]
    assert [s["source"] for s in report["skipped"]] == ["a.zip!README.txt"]
    assert report["dataset_rows"] == {"premium_usage_files": 4}


def test_metadata_duplicates_across_two_files(run, files):
    from tests.importing.conftest import error_line

    one = write(files / "m1.csv", "email,geo\nann@acme.example,AMER\n")
    two = write(files / "m2.csv", "Email,Geo\nbob@acme.example,EMEA\nAnn@Acme.example,EMEA\n")
    result = run("import", one, two, ok=False)
    assert result.exit_code == 2
    assert error_line(result) == ("m2.csv: duplicate email 'ann@acme.example' in m1.csv row 2 and m2.csv row 3; "
                                  "each user may appear once in the metadata")
