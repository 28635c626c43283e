"""``--hash-personal-data`` on extraction (Premium, Token Flex) and on import of every
hand-download file: no e-mail address, name or user name of any sandbox user appears in any
file under the data dir, read as bytes and (Parquet) as text; the salt is mode 0600."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from extractor.dataset import DataDir

from .conftest import invoke, ok

RANGE = ("2026-10-01", "2026-10-12")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def hashed_data_dir(sandbox, tmp_path_factory) -> Path:
    from extractor.sandbox import files as sandbox_files

    from .conftest import FAST_ENV

    root = tmp_path_factory.mktemp("personal")
    data_dir = root / "data"
    downloads = sandbox_files.write_files(sandbox.data, root / "downloads")
    span = ["--since", RANGE[0], "--until", RANGE[1]]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST_ENV.items():
            mp.setenv(key, value)
        ok(invoke(data_dir, sandbox.base_url, "extract", "premium", "--team", "4865648", "--team", "5477102",
                  *span, "--hash-personal-data"))
        ok(invoke(data_dir, sandbox.base_url, "extract", "tokenflex", *span, "--hash-personal-data"))
        ok(invoke(data_dir, None, "import", "--hash-personal-data", *downloads))
    return data_dir


def personal_values(sandbox) -> tuple[set[str], set[str]]:
    """(strings that must appear nowhere, names that must be no cell's whole value)."""
    people = sandbox.data.people
    anywhere: set[str] = set()
    for column in ("email", "full_name", "user_name", "tokenflex_user_name"):
        anywhere |= {v for v in people.column(column).to_pylist() if v and len(v) >= 5}
    names = {v.lower() for c in ("first_name", "last_name") for v in people.column(c).to_pylist() if v}
    return anywhere, names


def test_no_personal_data_in_any_file(hashed_data_dir, sandbox):
    anywhere, names = personal_values(sandbox)
    assert len(anywhere) > 60
    checked = 0
    for path in sorted(p for p in hashed_data_dir.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        found = sorted(v for v in anywhere if v.encode() in blob or v.lower().encode() in blob)
        assert not found, f"{path.relative_to(hashed_data_dir)}: {found[:5]}"
        if path.suffix != ".parquet":
            continue
        table = pq.read_table(path)
        for column in table.column_names:
            values = [v for v in table.column(column).to_pylist() if isinstance(v, str)]
            text = "\n".join(values)
            leaked = sorted(v for v in anywhere if v in text or v.lower() in text.lower())
            assert not leaked, f"{path.relative_to(hashed_data_dir)} column {column}: {leaked[:5]}"
            named = sorted({v for v in values if v.strip().lower() in names})
            assert not named, f"{path.relative_to(hashed_data_dir)} column {column}: names {named[:5]}"
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("dataset,column", [
    ("premium_usage", "email"), ("premium_users", "email"), ("tokenflex_usage", "user_name"),
    ("premium_usage_files", "email"), ("user_metadata", "email"),
])
def test_personal_columns_hold_hashes(hashed_data_dir, dataset, column):
    """Not vacuous: the columns are filled, with SHA-256 hex digests."""
    values = [v for v in DataDir(hashed_data_dir).read(dataset).column(column).to_pylist() if v]
    assert len(values) > 5
    assert all(HEX64.match(v) for v in values), values[:3]


def test_salt_is_private(hashed_data_dir):
    salt = hashed_data_dir / "state" / "salt"
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600


def test_the_same_email_hashes_the_same_in_extracted_and_imported_data(hashed_data_dir, sandbox):
    """Pseudonyms still join: extract and import hash one e-mail (salted) to one value."""
    dd = DataDir(hashed_data_dir)
    extracted = set(dd.read("premium_usage").column("email").to_pylist()) - {None}
    imported = set(dd.read("user_metadata").column("email").to_pylist()) - {None}
    assert extracted and imported
    assert extracted & imported, "no user of the extracted usage matches a hashed metadata row"
    from extractor.personal import hash_value

    salt = (hashed_data_dir / "state" / "salt").read_bytes().strip()
    emails = [e for e in sandbox.data.people.column("email").to_pylist() if e]
    assert {hash_value(salt, e) for e in emails} >= imported  # salted, the extractor's way
