"""The Python API other areas build on: create_app, start_in_thread, write_files."""

from __future__ import annotations

import httpx
import pytest

from extractor.sandbox.app import create_app
from extractor.sandbox.data import generate
from extractor.sandbox.faults import FaultSpecError
from extractor.sandbox.files import write_files
from extractor.sandbox.server import start_in_thread


@pytest.fixture(scope="module")
def small():
    return generate(seed=2, users=24, days=20, end_date="2026-10-31")


def test_start_in_thread_picks_a_free_port_and_stops(small):
    app = create_app(small, time_scale=0.01)
    with start_in_thread(app) as a, start_in_thread(create_app(small)) as b:
        assert a.base_url.startswith("http://127.0.0.1:") and a.port != b.port
        assert httpx.get(a.base_url + "/").json()["usage_rows"] == small.usage.num_rows
    with pytest.raises(httpx.ConnectError):
        httpx.get(a.base_url + "/", timeout=2)


def test_create_app_refuses_bad_options(small):
    with pytest.raises(FaultSpecError):
        create_app(small, faults="500:2")
    with pytest.raises(ValueError):
        create_app(small, time_scale=0)


def test_write_files_is_atomic_and_checks_naming(small, tmp_path):
    with pytest.raises(ValueError, match="naming"):
        write_files(small, tmp_path / "x", naming="1999")
    paths = write_files(small, tmp_path / "out", naming="2026")
    assert len(paths) == 6 and all(p.exists() and p.stat().st_size > 0 for p in paths)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    first = [p.read_bytes() for p in paths]
    again = write_files(small, tmp_path / "out", naming="2026")
    assert [p.read_bytes() for p in again] == first  # deterministic: the same bytes again
