"""Hostile and malformed input files through ``aps-usage import``: each one EITHER imports
correctly (the rows it must add are checked) OR fails with one ``Error:`` line naming the
file (and the row and column where they apply), a non-zero exit code, and the data dir
unchanged byte for byte. The cases live in ``hostile.py``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .conftest import error_lines, fingerprint, invoke, is_one_line_error, ok, stray_files
from .hostile import CASES, HEADER, Case, put

KEY_COLUMNS = {
    "premium_usage_files": ("email", "usage_date", "product_name"),
    "tokenflex_usage": ("user_name", "usage_date", "product_name"),
    "user_metadata": ("email",),
}
#: what the data dir already holds before each case
PREVIOUS_USAGE = HEADER + "\nLondon,U0,zoe@acme.example,Zoe,Ng,2025-12-01,Maya,Flex,3,flex,2026\n"
PREVIOUS_TF = "usageDate,contractYear,usageCategory,productName,userName,tokensConsumed\n2025-12-02,1,DESKTOP_PRODUCT,Maya,zoe,4\n"
PREVIOUS_META = "email,geo,country,department\nzoe@acme.example,EMEA,GB,Design\n"


@pytest.fixture(scope="module")
def previous(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile-previous")
    files = [put(root / "in", "prev_usage.csv", PREVIOUS_USAGE), put(root / "in", "prev_tf.csv", PREVIOUS_TF),
             put(root / "in", "prev_meta.csv", PREVIOUS_META)]
    ok(invoke(root / "data", None, "import", *files))
    return root / "data"


def keys(data_dir: Path, dataset: str) -> Counter:
    from extractor.dataset import DataDir

    table = DataDir(data_dir).read(dataset)
    columns = [table.column(c).to_pylist() for c in KEY_COLUMNS[dataset]]
    return Counter(tuple(None if v is None else str(v) for v in row) for row in zip(*columns))


def test_there_are_enough_cases():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# On the S3 stand-in: a few of each outcome (imported, refused by the reader, refused after
# other files were staged, the metadata replace); every case locally.
S3_CASES = ("header only", "UTF-16 LE with BOM", "duplicate rows in one file", "metadata, valid",
            "ragged row: too many fields", "ZIP bomb (compression ratio)", "metadata with duplicate keys",
            "one bad file among good ones")
HOSTILE_CASES = [(c, "local") for c in CASES] + [(c, "s3") for c in CASES if c.id in S3_CASES]


@pytest.mark.parametrize("case,place", HOSTILE_CASES, indirect=["place"], ids=[f"{c.id}-{w}" for c, w in HOSTILE_CASES])
def test_hostile_file(case: Case, place, previous: Path, tmp_path: Path, monkeypatch):
    from extractor.importing import sources

    for name, value in case.env.items():
        monkeypatch.setattr(sources, name, value)
    data_dir = place(previous)
    before = fingerprint(data_dir)
    before_keys = keys(data_dir, case.dataset)
    inputs = case.build(tmp_path / "in")
    args = ["import", *inputs] + (["--kind", case.kind] if case.kind else [])

    result = invoke(data_dir, None, *args)

    assert "Traceback" not in result.output, result.output
    assert not stray_files(data_dir)
    if result.exit_code == 0:
        assert case.expect in ("ok", "either"), f"{case.id}: imported, but it must be refused:\n{result.output}"
        gained = keys(data_dir, case.dataset)
        if case.dataset != "user_metadata":
            gained = gained - before_keys
            assert keys(data_dir, case.dataset) - gained == before_keys, "rows already there were lost"
        expected = Counter(tuple(None if v is None else str(v) for v in row) for row in (case.rows or []))
        assert gained == expected, f"{case.id}: rows imported {sorted(gained)} != {sorted(expected)}"
        if case.check is not None:
            from extractor.dataset import DataDir

            case.check(DataDir(data_dir).read(case.dataset))
        return
    assert case.expect in ("error", "either"), f"{case.id}: refused, but it is importable:\n{result.output}"
    assert is_one_line_error(result), f"{case.id}: exit {result.exit_code}, output:\n{result.output}\n{result.exception!r}"
    line = error_lines(result)[0]
    for name in case.names:
        assert name in line, f"{case.id}: the error does not name {name!r}: {line}"
    assert "\n" not in line and len(line) < 2000
    assert fingerprint(data_dir) == before, f"{case.id}: a failed import changed the data dir"
