"""Open the report in headless Chromium: read the page's status marker, take a screenshot."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from bi_fixtures import CHROMIUM, require_all

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
    "--virtual-time-budget=20000",
]


def need_chromium() -> str:
    if CHROMIUM is None:
        if require_all():
            pytest.fail("chromium is not installed and APS_USAGE_REQUIRE_ALL=1")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return CHROMIUM


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [need_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120,
    )


def dump_dom(page: Path, work: Path) -> str:
    done = _run(["--dump-dom", page.resolve().as_uri()], work / "chromium-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def report_status(dom: str) -> dict:
    """The JSON the report's own script writes into #report-status after load."""
    match = re.search(r'<pre id="report-status">(.*?)</pre>', dom, re.S)
    assert match, "no #report-status element in the page"
    assert match.group(1).strip(), "the report's status script never ran"
    return json.loads(html.unescape(match.group(1)))


def screenshot(page: Path, work: Path, size: str = "1400,4000") -> Path:
    png = work / "report.png"
    done = _run([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()], work / "chromium-shot")
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.exists() and png.stat().st_size > 10_000, "screenshot missing or blank"
    return png
