"""Every kind of bad input: one line naming file/row/column, exit code 2, nothing changed.

Each case runs against a data dir that already holds an import, together with a good file
(so a partial import would show), and compares every dataset and state file before/after.
"""

from __future__ import annotations

import zipfile

import pytest

from extractor.importing import sources
from tests.importing.conftest import (
    OLD_USAGE_HEADER,
    USAGE_ROWS,
    csv_text,
    error_line,
    gzip_bytes,
    write,
    zip_bytes,
)

GOOD = csv_text(OLD_USAGE_HEADER, USAGE_ROWS)


def _usage(rows, header=OLD_USAGE_HEADER) -> str:
    return csv_text(header, rows)


def _with(index: int, column: int, value: str) -> list[tuple]:
    rows = [list(r) for r in USAGE_ROWS]
    rows[index][column] = value
    return rows


CASES = [
    # name, file name, content, extra CLI args, expected error (regex, the whole line)
    ("unknown type", "report.pdf", b"%PDF-1.7\n%binary", (),
     r"report\.pdf: unknown file type \(PDF document\); expected CSV, XLSX, ZIP or gzip"),
    ("legacy xls", "report.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, (),
     r"report\.xls: unknown file type \(legacy Excel \.xls.*"),
    ("binary junk", "data.csv", bytes(range(256)) * 4, (),
     r"data\.csv: unknown file type \(binary content, not CSV or XLSX\)"),
    ("empty", "empty.csv", b"", (), r"empty\.csv: empty file"),
    ("blank", "blank.csv", b"\n\n  \n", (), r"blank\.csv: empty file"),
    ("unknown kind", "what.csv", "foo,bar,baz\n1,2,3\n", (),
     r"what\.csv: cannot tell what kind of file this is from its headers \('foo', 'bar', 'baz'\); "
     r"closest: .*Name it with --kind usage\|users\|subscriptions\|tokenflex\|metadata"),
    ("required column missing", "nodate.csv", "team_alias,email,product_name\nNY,a@x,Revit\n", ("--kind", "usage"),
     r"nodate\.csv: required column 'usage_date' missing for a usage file \(headers: 'team_alias', 'email', 'product_name'\)"),
    ("ragged row", "ragged.csv", GOOD.replace("Munich,U2,", "Munich,", 1), (),
     r"ragged\.csv: row 4: expected 11 values \(one per header\), found 10"),
    ("too many values", "wide.csv", GOOD.replace("Munich,U3,", "Munich,U3,x,", 1), (),
     r"wide\.csv: row 5: expected 11 values \(one per header\), found 12"),
    ("unclosed quote at end", "quote.csv", GOOD.rstrip("\n") + ',"oops\n', (),
     r"quote\.csv: row 5: unclosed quote \(the quoted value runs to the end of the file\)"),
    ("unclosed quote inside", "quote2.csv", GOOD.replace("Munich,U2,", 'Munich,"U2,', 1), (),
     r"quote2\.csv: row 4: unclosed quote \(the quoted value runs to the end of the file\)"),
    ("ragged row in a ZIP member", "ragged.zip", zip_bytes({"in/u.csv": GOOD.replace("Munich,U2,", "Munich,", 1)}), (),
     r"ragged\.zip!in/u\.csv: row 4: expected 11 values \(one per header\), found 10"),
    ("ragged row in gzip", "ragged.csv.gz", gzip_bytes(GOOD.replace("Munich,U2,", "Munich,", 1)), (),
     r"ragged\.csv\.gz: row 4: expected 11 values \(one per header\), found 10"),
    ("ragged row in UTF-16", "ragged16.csv", GOOD.replace("Munich,U2,", "Munich,", 1).encode("utf-16"), (),
     r"ragged16\.csv: row 4: expected 11 values \(one per header\), found 10"),
    ("ragged row in cp1252", "ragged1252.csv", GOOD.replace("Munich,U2,", "Münich,", 1).encode("cp1252"), (),
     r"ragged1252\.csv: row 4: expected 11 values \(one per header\), found 10"),
    ("usage without its date column", "nodatecol.csv",
     "team_alias,email,product_name,offering_name,tokens_used\nNY,a@x,Revit,Flex,3\n", (),
     r"nodatecol\.csv: cannot tell what kind of file this is from its headers .*"),
    ("impossible date", "feb30.csv", _usage(_with(2, 5, "2026-02-30")), (),
     r"feb30\.csv: row 4, column 'day_used': '2026-02-30' is not a date .*"),
    ("impossible US date", "apr31.csv", _usage(_with(0, 5, "4/31/2026")), (),
     r"apr31\.csv: row 2, column 'day_used': '4/31/2026' is not a date .*"),
    ("duplicate headers", "dupes.csv", _usage(USAGE_ROWS, OLD_USAGE_HEADER.replace("first_name", "EMAIL")), (),
     r"dupes\.csv: duplicate column 'email' \(headers 'email' and 'EMAIL'\)"),
    ("bad date", "date.csv", _usage(_with(2, 5, "2026-13-45")), (),
     r"date\.csv: row 4, column 'day_used': '2026-13-45' is not a date .*"),
    ("empty date", "nodate2.csv", _usage(_with(1, 5, "")), (),
     r"nodate2\.csv: row 3, column 'day_used': empty; every row needs a date"),
    ("negative tokens", "neg.csv", _usage(_with(3, 8, "-7")), (),
     r"neg\.csv: row 5, column 'tokens_used': negative tokens \(-7\)"),
    ("non-numeric tokens", "nan.csv", _usage(_with(0, 8, "lots")), (),
     r"nan\.csv: row 2, column 'tokens_used': 'lots' is not a number"),
    ("tokenflex negative outside adjustments", "tf.csv",
     "usageDate,usageCategory,productName,tokensConsumed\n2026-01-05,DESKTOP_PRODUCT,Revit,-3\n", (),
     r"tf\.csv: row 2, column 'tokensConsumed': negative tokens \(-3\) \(allowed only in MANUAL_ADJUSTMENT rows\)"),
    ("zip with ..", "evil.zip", zip_bytes({"ok.csv": GOOD, "../../evil.csv": GOOD}), (),
     r"evil\.zip: unsafe path in ZIP archive: '\.\./\.\./evil\.csv' \(absolute or with '\.\.'\)"),
    ("zip with absolute path", "abs.zip", zip_bytes({"/etc/usage.csv": GOOD}), (),
     r"abs\.zip: unsafe path in ZIP archive: '/etc/usage\.csv'.*"),
    ("zip bomb ratio", "bomb.zip", zip_bytes({"u.csv": GOOD + " " * (40 << 20)}), (),
     r"bomb\.zip: ZIP member 'u\.csv' compresses \d+:1, over the limit of 250:1 \(a zip bomb\?\)"),
    ("broken xlsx", "broken.xlsx", zip_bytes({"[Content_Types].xml": "<x/>", "xl/workbook.xml": "not xml"}), (),
     r"broken\.xlsx: not a readable XLSX workbook .*"),
    ("truncated zip", "cut.zip", zip_bytes({"u.csv": GOOD * 50})[:300], (),
     r"cut\.zip: not a readable ZIP/XLSX file .*"),
    ("metadata duplicate key", "meta.csv",
     "Email,Department\nann@acme.example,Arch\nbob@acme.example,Eng\n ANN@Acme.example ,Eng\n", (),
     r"meta\.csv: duplicate email 'ann@acme\.example' in rows 2 and 4; each user may appear once in the metadata"),
    ("not a folder or file", None, None, (), r".*missing\.csv: no such file or folder"),
]


@pytest.fixture
def populated(run, files):
    """A data dir holding a usage import and metadata, and its fingerprint."""
    run("import", write(files / "first.csv", csv_text(OLD_USAGE_HEADER, USAGE_ROWS[:2])),
        write(files / "meta0.csv", "email,geo\nann@acme.example,AMER\n"))
    return run.fingerprint()


@pytest.mark.parametrize("name, filename, content, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(run, files, populated, name, filename, content, args, expected):
    good = write(files / "good.csv", GOOD)
    bad = files / "missing.csv" if filename is None else write(files / filename, content)
    result = run("import", *args, good, bad, ok=False)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "\n" not in line
    assert __import__("re").fullmatch(expected, line), line
    assert run.fingerprint() == populated  # nothing changed, the good file neither


def test_invalid_utf8_deep_in_a_big_file_names_row_and_column(run, files, populated):
    rows = [("NY", f"U{i}", f"u{i}@acme.example", "Ann", "Lee", "2026-01-05", "Revit", "AEC", "0", "sus", "2026")
            for i in range(3000)]  # > 64 KiB: the start decides UTF-8
    data = csv_text(OLD_USAGE_HEADER, rows).encode()
    at = data.index(b"u2500@")
    data = data[:at] + b"\xe9" + data[at + 1:]  # cp1252 'é' in a UTF-8 file
    result = run("import", write(files / "mixed.csv", data), ok=False)
    assert result.exit_code == 2
    assert error_line(result) == ("mixed.csv: row 2502, column 'email': invalid UTF-8 byte 0xe9 "
                                  "(the file is not UTF-8 throughout; save it as UTF-8)")
    assert run.fingerprint() == populated


@pytest.mark.parametrize("bad_cell", [("email", b"\xe9"), ("day_used", b"2026-13-01")])
def test_a_bad_cell_just_past_a_batch_in_the_same_block_is_named_once_read(run, files, populated, monkeypatch,
                                                                          bad_cell):
    """A batch cut from one of Arrow's blocks keeps the whole block's dictionary: a bad value
    of the next batch's first row must be reported at that row, not in the batch before."""
    from extractor.importing import readers

    monkeypatch.setattr(readers, "CSV_BATCH_ROWS", 1000)  # one 512 KiB block holds three batches
    rows = [("NY", f"U{i}", f"u{i}@acme.example", "Ann", "Lee", "2026-01-05", "Revit", "AEC", "0", "sus", "2026")
            for i in range(3000)]
    data = csv_text(OLD_USAGE_HEADER, rows).encode()
    column, value = bad_cell
    at = data.index(b"u1000@") if column == "email" else data.index(b"2026-01-05", data.index(b"u1000@"))
    data = data[:at] + value + data[at + (1 if column == "email" else 10):]
    result = run("import", write(files / "cut.csv", data), ok=False)
    assert result.exit_code == 2
    expected = ("invalid UTF-8 byte 0xe9" if column == "email" else "'2026-13-01' is not a date")
    assert error_line(result).startswith(f"cut.csv: row 1002, column '{column}': {expected}"), error_line(result)
    assert run.fingerprint() == populated


def test_bad_value_deep_in_a_multi_batch_file(run, files, populated, monkeypatch):
    from extractor.importing import readers

    monkeypatch.setattr(readers, "CSV_BLOCK_SIZE", 64 << 10)  # many batches from a small file
    rows = [("NY", f"U{i}", f"u{i}@acme.example", "Ann", "Lee", "2026-01-05", "Revit", "AEC", str(i), "sus", "2026")
            for i in range(6000)]
    rows[5321] = rows[5321][:8] + ("12x",) + rows[5321][9:]
    result = run("import", write(files / "big.csv", csv_text(OLD_USAGE_HEADER, rows)), ok=False)
    assert error_line(result) == "big.csv: row 5323, column 'tokens_used': '12x' is not a number"
    assert run.fingerprint() == populated


def test_gzip_bomb_is_cut_off(run, files, populated, monkeypatch):
    monkeypatch.setattr(sources, "MAX_UNCOMPRESSED_BYTES", 1 << 20)
    big = GOOD + "\n".join(",".join(USAGE_ROWS[0]) for _ in range(30000)) + "\n"
    result = run("import", write(files / "big.csv.gz", gzip_bytes(big)), ok=False)
    assert result.exit_code == 2
    assert error_line(result).startswith("big.csv.gz: unpacks to more than 1,048,576 bytes")
    assert run.fingerprint() == populated


def test_zip_total_size_cap(run, files, populated, monkeypatch):
    monkeypatch.setattr(sources, "MAX_UNCOMPRESSED_BYTES", 1000)
    archive = zip_bytes({"a.csv": GOOD, "b.csv": GOOD, "c.csv": GOOD}, compression=zipfile.ZIP_STORED)
    result = run("import", write(files / "many.zip", archive), ok=False)
    assert error_line(result).startswith("many.zip: ZIP archive would unpack to 1,")
    assert run.fingerprint() == populated


def test_zip_nested_two_levels_is_skipped(run, files, populated):
    deep = zip_bytes({"l1.zip": zip_bytes({"l2.zip": zip_bytes({"u.csv": GOOD})})})
    result = run("import", write(files / "deep.zip", deep), ok=False)
    assert "deep.zip!l1.zip!l2.zip: skipped: ZIP nested more than one level deep" in result.stderr
    assert error_line(result).startswith("nothing to import")
    assert run.fingerprint() == populated


def test_archive_with_nothing_importable_fails(run, files, populated):
    result = run("import", write(files / "docs.zip", zip_bytes({"README.txt": "hello\nworld\n"})), ok=False)
    assert result.exit_code == 2
    assert error_line(result).startswith("nothing to import (docs.zip!README.txt: cannot tell what kind")
    assert run.fingerprint() == populated


def test_unknown_kind_in_a_workbook_alone_fails(run, files, populated):
    from tests.importing.conftest import xlsx_bytes

    book = xlsx_bytes({"Notes": [["Some", "Notes"], ["x", "y"]]})
    result = run("import", write(files / "notes.xlsx", book), ok=False)
    assert result.exit_code == 2
    assert error_line(result).startswith("nothing to import (notes.xlsx#Notes: cannot tell what kind")
    assert run.fingerprint() == populated


def test_unknown_kind_option(run, files):
    result = run("import", "--kind", "bogus", write(files / "g.csv", GOOD), ok=False)
    assert result.exit_code == 2 and "Invalid value for '--kind'" in result.output
