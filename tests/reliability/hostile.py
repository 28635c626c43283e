"""The hostile input files of ``test_hostile_files.py``: each case builds its files in a folder
and says what a correct import looks like (rows of a dataset) or what the error must name."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HEADER = "Team,User ID,Email,First Name,Last Name,Date,Product,Offering,Tokens Used,Usage Type,Version"
ROWS = [
    "New York Office,U1,ann@acme.example,Ann,Lee,2026-01-05,Revit,AEC Collection,0,sus,2026",
    "New York Office,U1,ann@acme.example,Ann,Lee,2026-01-06,AutoCAD,AEC Collection,0,sus,2026",
    "Munich,U2,bob@acme.example,Bob,Kurz,2026-01-06,Civil 3D,Flex,1250.5,flex,2025",
]
GOOD = HEADER + "\n" + "\n".join(ROWS) + "\n"
#: (email, usage_date, product_name) of ROWS
KEYS = [("ann@acme.example", "2026-01-05", "Revit"), ("ann@acme.example", "2026-01-06", "AutoCAD"),
        ("bob@acme.example", "2026-01-06", "Civil 3D")]


def with_keys(*extra: tuple) -> list[tuple]:
    """The keys of a ``with_row`` file: ROWS[0], the given row(s), ROWS[2]."""
    return [KEYS[0], *extra, KEYS[2]]


TF_HEADER = "usageDate,contractYear,usageCategory,productName,userName,tokensConsumed"
METADATA_HEADER = "email,geo,country,department"


@dataclass
class Case:
    id: str
    build: Callable[[Path], list[Path]]  # writes the files into a folder, returns the import arguments
    expect: str  # "ok" or "error"
    # ok: dataset and the (email, usage_date, product_name)-like keys of the rows it must gain
    dataset: str = "premium_usage_files"
    rows: list[tuple] | None = None
    check: Callable | None = None  # extra check of the imported table
    # error: what the one error line must contain (file name always; row/column where they apply)
    names: list[str] = field(default_factory=list)
    kind: str | None = None
    env: dict = field(default_factory=dict)  # module attributes to patch (limits)


def put(folder: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def one(name: str, data: bytes | str, encoding: str = "utf-8") -> Callable[[Path], list[Path]]:
    return lambda folder: [put(folder, name, data, encoding)]


def zipped(members: dict[str, bytes | str], method=zipfile.ZIP_DEFLATED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", method) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            zf.writestr(info, data.encode() if isinstance(data, str) else data)
    return sink.getvalue()


def xlsx(sheets: dict[str, list[list]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    sink = io.BytesIO()
    wb.save(sink)
    return sink.getvalue()


def table_rows(text: str) -> list[list]:
    return [line.split(",") for line in text.strip().splitlines()]


def with_row(row: str) -> str:
    return HEADER + "\n" + ROWS[0] + "\n" + row + "\n" + ROWS[2] + "\n"


def junk_folder(folder: Path) -> list[Path]:
    d = folder / "downloads"
    put(d, "usage.csv", GOOD)
    put(d, "README.txt", "These are the usage reports.\nDo not edit.\n")
    put(d, ".DS_Store", b"\x00\x00\x00\x01Bud1" + b"\x00" * 64)
    put(d, "Thumbs.db", b"\xd0\xcf\x11\xe0" + b"\x00" * 64)
    put(d, "logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    put(d, "notes.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    put(d, "empty.csv", b"")
    return [d]


def only_junk_folder(folder: Path) -> list[Path]:
    d = folder / "junk"
    put(d, "README.txt", "nothing here\n")
    put(d, "logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return [d]


def one_bad_among_good(folder: Path) -> list[Path]:
    d = folder / "mixed"
    put(d, "a_good.csv", GOOD)
    put(d, "b_bad.csv", with_row("Munich,U9,x@acme.example,X,Y,2026-01-07,Revit,Flex,lots,flex,2026"))
    return [d]


def symlink_loop(folder: Path) -> list[Path]:
    d = folder / "loop"
    put(d, "usage.csv", GOOD)
    (d / "self").symlink_to(d, target_is_directory=True)
    return [d]


def bomb_zip() -> bytes:
    return zipped({"usage.csv": GOOD.encode() + b" " * (40 << 20)})


def nested_twice() -> bytes:
    return zipped({"outer.zip": zipped({"inner.zip": zipped({"usage.csv": GOOD})})})


def wide(extra: int) -> str:
    return "\n".join(line + "," + ",".join((f"extra{i}" if n == 0 else str(i)) for i in range(extra))
                     for n, line in enumerate(GOOD.strip().splitlines())) + "\n"


def long_cell(size: int) -> str:
    return with_row("Munich,U4,long@acme.example,L," + "x" * size + ",2026-01-07,Revit,Flex,1,flex,2026")


def _kept_verbatim(values: list[str], column: str):
    def check(table):
        got = set(table.column(column).to_pylist())
        missing = [v for v in values if v not in got]
        assert not missing, f"values not kept verbatim in {column}: {missing!r}"
    return check


FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(A1:A9)", "-2+3", "@cmd|' /C calc'!A0"]

CASES: list[Case] = [
    # --- empty and degenerate -------------------------------------------------------------
    Case("empty file", one("empty.csv", b""), "error", names=["empty.csv"]),
    Case("only a UTF-8 BOM", one("bom.csv", b"\xef\xbb\xbf"), "error", names=["bom.csv"]),
    Case("only blank lines", one("blank.csv", "\n\n\r\n  \n"), "error", names=["blank.csv"]),
    Case("header only", one("header.csv", HEADER + "\n"), "ok", rows=[]),
    Case("header only, no newline", one("header2.csv", HEADER), "ok", rows=[]),
    # --- delimiters, quoting, line ends ---------------------------------------------------
    Case("semicolon delimiter", one("semi.csv", GOOD.replace(",", ";")), "ok", rows=KEYS),
    Case("tab delimiter", one("tab.tsv", GOOD.replace(",", "\t")), "ok", rows=KEYS),
    Case("CRLF line ends", one("crlf.csv", GOOD.replace("\n", "\r\n")), "ok", rows=KEYS),
    Case("CR-only line ends", one("cr.csv", GOOD.replace("\n", "\r")), "ok", rows=KEYS),
    Case("quoted field with newline and quotes", one("quoted.csv", with_row(
        'Munich,U5,q@acme.example,"Q ""the"" first","Multi\nLine",2026-01-07,Revit,Flex,2,flex,2026')), "ok",
        rows=with_keys(("q@acme.example", "2026-01-07", "Revit"))),
    Case("ragged row: too many fields", one("ragged_long.csv", with_row(ROWS[1] + ",extra,more")), "error",
         names=["ragged_long.csv", "row 3"]),
    Case("ragged row: too few fields", one("ragged_short.csv", with_row("Munich,U2,bob@acme.example")), "error",
         names=["ragged_short.csv", "row 3"]),
    Case("quote never closed", one("openquote.csv", with_row('Munich,U2,"bob@acme.example,Bob,Kurz,2026-01-06,Revit,Flex,1,flex,2025')),
         "error", names=["openquote.csv"]),
    # --- encodings ------------------------------------------------------------------------
    Case("UTF-8 with BOM", one("bom8.csv", "\ufeff" + GOOD), "ok", rows=KEYS),
    Case("UTF-16 LE with BOM", one("u16le.csv", "\ufeff" + GOOD, "utf-16-le"), "ok", rows=KEYS),
    Case("UTF-16 BE with BOM", one("u16be.csv", "\ufeff" + GOOD, "utf-16-be"), "ok", rows=KEYS),
    Case("UTF-16 LE without BOM", one("u16nobom.csv", GOOD, "utf-16-le"), "ok", rows=KEYS),
    Case("Windows-1252 accents", one("cp1252.csv", with_row("München,U6,jose@acme.example,José,Müller,2026-01-07,Revit,Flex,1,flex,2026"), "cp1252"),
         "ok", rows=with_keys(("jose@acme.example", "2026-01-07", "Revit"))),
    Case("invalid UTF-8 in a UTF-8 file", lambda f: [put(f, "badutf8.csv", ("\ufeff" + with_row(
        "Munich,U7,bad@acme.example,B,Z,2026-01-07,Revit,Flex,1,flex,2026")).encode().replace(b"B,Z", b"B\xff\xfe,Z"))],
         "either", names=["badutf8.csv"]),
    Case("NUL bytes (kept verbatim)", one("nul.csv", GOOD.replace("Revit", "Re\x00vit")), "either", names=["nul.csv"],
         rows=[(KEYS[0][0], KEYS[0][1], "Re\x00vit"), KEYS[1], KEYS[2]]),
    Case("binary garbage", one("garbage.csv", bytes(range(256)) * 64), "error", names=["garbage.csv"]),
    Case("an HTML error page saved as CSV", one("page.csv", "<!DOCTYPE html><html><body><h1>Session expired</h1></body></html>\n"),
         "error", names=["page.csv"]),
    Case("JSON instead of CSV", one("data.csv", '{"rows": [1, 2, 3]}\n'), "error", names=["data.csv"]),
    # --- headers ----------------------------------------------------------------------------
    Case("unknown columns only", one("unknown.csv", "alpha,beta,gamma\n1,2,3\n"), "error", names=["unknown.csv"]),
    Case("required column missing (date)", one("nodate.csv", "\n".join(
        ",".join(c for i, c in enumerate(line.split(",")) if i != 5) for line in GOOD.strip().splitlines()) + "\n"),
         "error", names=["nodate.csv"]),
    Case("required column missing with --kind", one("nodate_kind.csv", "\n".join(
        ",".join(c for i, c in enumerate(line.split(",")) if i != 5) for line in GOOD.strip().splitlines()) + "\n"),
         "error", names=["nodate_kind.csv"], kind="usage"),
    Case("duplicate headers", one("dupe.csv", GOOD.replace("Version", "Product", 1)), "error", names=["dupe.csv"]),
    Case("duplicate headers after normalising", one("dupe2.csv", GOOD.replace("Version", " product ", 1)), "error",
         names=["dupe2.csv"]),
    Case("header case and spaces", one("case.csv", GOOD.replace(HEADER, HEADER.upper().replace(",", " , "))), "ok",
         rows=KEYS),
    Case("title lines above the header", one("title.csv", "Usage report\nGenerated 2026-01-31\n" + GOOD), "ok", rows=KEYS),
    Case("200 extra columns", one("wide.csv", wide(200)), "ok", rows=KEYS),
    Case("a thousand extra columns", one("wider.csv", wide(1000)), "either", rows=KEYS, names=["wider.csv"]),
    # --- values -----------------------------------------------------------------------------
    Case("US dates m/d/yyyy", one("usdates.csv", GOOD.replace("2026-01-05", "1/5/2026").replace("2026-01-06", "1/6/2026")),
         "ok", rows=KEYS),
    Case("impossible date", one("baddate.csv", with_row("Munich,U8,d@acme.example,D,E,2026-02-30,Revit,Flex,1,flex,2026")),
         "error", names=["baddate.csv", "row 3", "Date"]),
    Case("date in words", one("worddate.csv", with_row("Munich,U8,d@acme.example,D,E,yesterday,Revit,Flex,1,flex,2026")),
         "error", names=["worddate.csv", "row 3", "Date"]),
    Case("date in the year 9999", one("farfuture.csv", with_row("Munich,U8,d@acme.example,D,E,9999-01-01,Revit,Flex,1,flex,2026")),
         "error", names=["farfuture.csv", "row 3", "Date"]),
    Case("non-numeric tokens", one("nan.csv", with_row("Munich,U9,x@acme.example,X,Y,2026-01-07,Revit,Flex,lots,flex,2026")),
         "error", names=["nan.csv", "row 3", "Tokens Used"]),
    Case("negative tokens in a usage report", one("neg.csv", with_row("Munich,U9,x@acme.example,X,Y,2026-01-07,Revit,Flex,-5,flex,2026")),
         "either", names=["neg.csv", "row 3", "Tokens Used"]),
    Case("Token Flex export with a negative adjustment", one("tf.csv", TF_HEADER + "\n2026-01-05,1,DESKTOP_PRODUCT,Revit,ann,12.5\n"
                                                          "2026-01-06,1,MANUAL_ADJUSTMENT,,ann,-3\n"), "ok",
         dataset="tokenflex_usage", rows=[("ann", "2026-01-05", "Revit"), ("ann", "2026-01-06", None)]),
    Case("Token Flex export with non-numeric tokens", one("tfbad.csv", TF_HEADER + "\n2026-01-05,1,DESKTOP_PRODUCT,Revit,ann,1e999x\n"),
         "error", names=["tfbad.csv", "row 2", "tokensConsumed"]),
    Case("formula-like values kept verbatim", one("formula.csv", HEADER + "\n" + "\n".join(
        f"Munich,U{i},f{i}@acme.example,\"{v.replace(chr(34), chr(34) * 2)}\",Lee,2026-01-07,Revit,Flex,1,flex,2026"
        for i, v in enumerate(FORMULAS)) + "\n"), "ok",
         rows=[(f"f{i}@acme.example", "2026-01-07", "Revit") for i in range(len(FORMULAS))],
         check=_kept_verbatim(FORMULAS, "first_name")),
    Case("ANSI escapes and control characters in a value", one("ansi.csv", with_row(
        "Munich,U9,esc@acme.example,\x1b[31mRed\x1b[0m,\x07Bell,2026-01-07,Revit,Flex,1,flex,2026")), "ok",
         rows=with_keys(("esc@acme.example", "2026-01-07", "Revit"))),
    Case("a 10 MB cell", one("long.csv", long_cell(10 << 20)), "either", names=["long.csv"],
         rows=with_keys(("long@acme.example", "2026-01-07", "Revit"))),
    Case("duplicate rows in one file", one("twice.csv", GOOD + ROWS[0] + "\n" + ROWS[0] + "\n"), "ok", rows=KEYS),
    # --- archives ---------------------------------------------------------------------------
    Case("ZIP with a ../ path", one("dotdot.zip", zipped({"../../evil.csv": GOOD})), "error", names=["dotdot.zip", "../../evil.csv"]),
    Case("ZIP with an absolute path", one("abs.zip", zipped({"/etc/evil.csv": GOOD})), "error", names=["abs.zip"]),
    Case("ZIP with a Windows ..\\ path", one("dotdotwin.zip", zipped({"..\\..\\evil.csv": GOOD})), "error", names=["dotdotwin.zip"]),
    Case("ZIP bomb (compression ratio)", lambda f: [put(f, "bomb.zip", bomb_zip())], "error", names=["bomb.zip"]),
    Case("ZIP over the total size cap", one("big.zip", zipped({"a.csv": GOOD, "b.csv": GOOD})), "error", names=["big.zip"],
         env={"MAX_UNCOMPRESSED_BYTES": 300}),
    Case("gzip bomb", one("bomb.csv.gz", gzip.compress(GOOD.encode() + b" " * (40 << 20))), "error", names=["bomb.csv.gz"]),
    Case("ZIP in a ZIP (one level)", one("nested.zip", zipped({"inner.zip": zipped({"usage.csv": GOOD})})), "ok", rows=KEYS),
    Case("ZIP in a ZIP in a ZIP", one("nested2.zip", nested_twice()), "error", names=["nested2.zip"]),
    Case("ZIP with a README and a usage CSV", one("withreadme.zip", zipped({"README.txt": "hello\n", "usage.csv": GOOD})), "ok",
         rows=KEYS),
    Case("empty ZIP", one("emptyzip.zip", zipped({})), "error", names=["emptyzip.zip"]),
    Case("truncated ZIP", one("cut.zip", zipped({"usage.csv": GOOD * 50})[:-60]), "error", names=["cut.zip"]),
    Case("corrupt gzip", one("cut.csv.gz", gzip.compress((GOOD * 50).encode())[:-30]), "error", names=["cut.csv.gz"]),
    # --- workbooks --------------------------------------------------------------------------
    Case("XLSX with unexpected sheets", one("book.xlsx", xlsx({"Read me": [["This workbook holds usage"]],
                                                                  "Usage": table_rows(GOOD), "Chart data": [[1, 2], [3, 4]]})),
         "ok", rows=KEYS),
    Case("XLSX with only an empty sheet", one("emptybook.xlsx", xlsx({"Sheet1": []})), "error", names=["emptybook.xlsx"]),
    Case("XLSX that is really a CSV", one("csvbook.xlsx", GOOD), "ok", rows=KEYS),
    Case("XLSX that is a ZIP of junk", one("fake.xlsx", zipped({"hello.txt": "not a workbook"})), "error", names=["fake.xlsx"]),
    Case("XLSX of random bytes", one("random.xlsx", b"PK\x03\x04" + bytes(range(200))), "error", names=["random.xlsx"]),
    # --- metadata ---------------------------------------------------------------------------
    Case("metadata with duplicate keys", one("meta.csv", METADATA_HEADER + "\nann@acme.example,EMEA,DE,R&D\n"
                                              "bob@acme.example,AMER,US,Sales\n ANN@acme.example ,APAC,SG,Ops\n"),
         "error", names=["meta.csv", "ann@acme.example"]),
    Case("metadata, valid", one("meta_ok.csv", METADATA_HEADER + "\nann@acme.example,EMEA,DE,R&D\nbob@acme.example,AMER,US,Sales\n"),
         "ok", dataset="user_metadata", rows=[("ann@acme.example",), ("bob@acme.example",)]),
    # --- folders and names --------------------------------------------------------------
    Case("a folder with junk files", junk_folder, "ok", rows=KEYS),
    Case("a folder with only junk", only_junk_folder, "error", names=["junk"]),
    Case("one bad file among good ones", one_bad_among_good, "error", names=["b_bad.csv", "row 3", "Tokens Used"]),
    Case("a folder with a symlink loop", symlink_loop, "ok", rows=KEYS),
    Case("a device, not a file (/dev/zero)", lambda f: [Path("/dev/zero")], "error", names=["/dev/zero", "not a regular file"]),
    Case("a file that does not exist", lambda f: [f / "missing.csv"], "error", names=["missing.csv"]),
    Case("a newline in the file name", one("evil\nname.csv", b"\x00\x01\x02garbage" * 10), "error", names=["name.csv"]),
]
