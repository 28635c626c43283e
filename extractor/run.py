"""The scheduled refresh in one call: extract every source the credentials see, import a drop
folder, build, publish; one line per step and a JSON run summary under the data dir.

```python
from extractor.config import Settings
from extractor.run import run_all

summary = run_all(Settings(data_dir="data"), drop_dir="inbox")   # raises the failing step's error
```

The summary is written whatever happens (``<data-dir>/runs/<UTC timestamp>.json`` and
``runs/last-run.json``): the steps with outcome, counts and seconds, the dataset and mart
row counts, the outcome of the run and its exit code, so a scheduler or a monitoring job
can read what failed without parsing the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import Settings
from .errors import AuthError, InputError, UsageError
from .logs import Skip, Steps, redact
from .publish.files import write_text_atomic

log = logging.getLogger("aps_usage")

SOURCES = ("premium", "tokenflex")
RUNS_DIR = "runs"
LAST_RUN = "last-run.json"
#: imported drop-folder files move here (one folder per run), so the next run does not see them again
IMPORTED_DIR = "imported"


@dataclass
class RunSummary:
    started: str
    data_dir: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "running"
    exit_code: int | None = None
    failed_step: str | None = None
    error: str | None = None
    seconds: float = 0.0
    dataset_rows: dict[str, int] = field(default_factory=dict)
    mart_rows: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"aps_usage_version": __version__, "started": self.started, "data_dir": self.data_dir,
                "outcome": self.outcome, "exit_code": self.exit_code, "failed_step": self.failed_step,
                "error": self.error, "seconds": round(self.seconds, 3), "steps": self.steps,
                "dataset_rows": self.dataset_rows, "mart_rows": self.mart_rows, "outputs": self.outputs}


def parse_sources(text: str | None) -> list[str]:
    if text is None:
        return list(SOURCES)
    wanted = [s.strip().lower() for s in text.split(",") if s.strip()]
    if wanted == ["none"]:
        return []
    unknown = [s for s in wanted if s not in SOURCES]
    if unknown:
        raise InputError(f"--sources: unknown source(s) {', '.join(unknown)}; choose from {','.join(SOURCES)} or none")
    return wanted


def _not_visible(err: AuthError) -> bool:
    """HTTP 403: the credentials are valid but this API is not theirs (no Premium plan, no Flex contract)."""
    return "HTTP 403" in str(err)


def _extract(steps: Steps, settings: Settings, sources: list[str], auth) -> None:
    from .premium import extract_premium
    from .tokenflex import extract_tokenflex

    extractors = {  # source -> (step name, extract function, what it covered)
        "premium": ("Extract Premium Reporting", extract_premium, lambda r: {"teams": len(r.teams)}),
        "tokenflex": ("Extract Token Flex", extract_tokenflex, lambda r: {"contracts": len(r.contracts)}),
    }
    for source in sources:
        name, extract, covered = extractors[source]
        with steps.step(name) as step:
            try:
                result = extract(settings, auth)
            except AuthError as err:
                if not _not_visible(err):
                    raise
                raise Skip(f"not visible to these credentials ({redact(str(err))[:160]})") from None
            step.counts = {**covered(result), "rows": sum(result.rows.values())}


def _drop_files(drop_dir: Path) -> list[Path]:
    if not drop_dir.is_dir():
        raise InputError(f"--drop-dir {drop_dir}: not a folder")
    return sorted(p for p in drop_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def _import_drop(steps: Steps, settings: Settings, drop_dir: Path, run_id: str) -> None:
    from .importing import import_paths

    with steps.step("Import drop folder") as step:
        files = _drop_files(drop_dir)
        if not files:
            raise Skip(f"no files in {drop_dir}")
        report = import_paths(settings, files)
        done = drop_dir / IMPORTED_DIR / run_id
        done.mkdir(parents=True, exist_ok=True)
        for path in files:  # all imported in one transaction: move them all once it committed
            shutil.move(str(path), done / path.name)
        step.counts = {"files": len(report.files), "rows": report.rows}
        step.detail = f"moved to {done}"


def run_all(
    settings: Settings,
    *,
    sources: Iterable[str] = SOURCES,
    drop_dir: Path | None = None,
    target: str = "duckdb",
    formats: set[str] | None = None,
    now: dt.datetime | None = None,
) -> RunSummary:
    """Extract -> import -> build -> publish. Writes the run summary, then re-raises a failure."""
    from .build import run_build
    from .demo import build_counts
    from .publish import publish

    started = now or dt.datetime.now(dt.UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    summary = RunSummary(started=started.isoformat(timespec="seconds"), data_dir=str(settings.data_dir))
    steps = Steps(verbose=settings.verbose, quiet=settings.quiet)
    sources = list(sources)
    clock = time.monotonic()
    try:
        if sources:
            from .auth import Auth
            from .http import ApiClient

            with ApiClient(settings, Auth(settings)) as api:
                _extract(steps, settings, sources, api.auth)
        if drop_dir is not None:
            _import_drop(steps, settings, Path(drop_dir), run_id)
        with steps.step("Build (dbt)") as step:
            build = run_build(settings, target=target)
            step.counts = build_counts(build)
        if target == "duckdb":
            with steps.step("Publish") as step:
                published = publish(settings, formats)
                step.counts = {"marts": len(published.marts), "files": sum(len(v) for v in published.outputs.values())}
                summary.mart_rows = {m.name: m.rows for m in published.marts}
                summary.outputs = {k: [str(p) for p in v] for k, v in published.outputs.items()}
                if published.skipped:
                    step.detail = "; ".join(f"skipped {k}: {v}" for k, v in published.skipped.items())
        summary.outcome, summary.exit_code = "ok", 0
        return summary
    except BaseException as err:
        failed = next((s for s in steps.done if s.outcome == "failed"), None)
        summary.failed_step = failed.name if failed else None
        summary.error = redact(str(err).splitlines()[0]) if str(err) else type(err).__name__
        if isinstance(err, (KeyboardInterrupt,)):
            summary.outcome, summary.exit_code = "interrupted", 130
        else:
            summary.outcome = "failed"
            summary.exit_code = err.exit_code if isinstance(err, UsageError) else 1
        raise
    finally:
        summary.steps = [s.as_dict() for s in steps.done]
        summary.seconds = time.monotonic() - clock
        summary.dataset_rows = _dataset_rows(settings.data_dir)
        summary.path = write_summary(settings.data_dir, run_id, summary)
        error = sys.exc_info()[1]
        if error is not None:
            error.run_summary = summary  # the CLI names the failed step and the summary file


def _dataset_rows(data_dir: Path) -> dict[str, int]:
    from .dataset import DataDir

    try:
        return {row["dataset"]: int(row["rows"]) for row in DataDir(data_dir).stats()}
    except Exception as err:  # the summary must be written even when the data dir is unreadable
        log.debug("dataset row counts for the run summary: %s", err)
        return {}


def write_summary(data_dir: Path, run_id: str, summary: RunSummary) -> Path:
    text = json.dumps(summary.as_dict(), indent=2) + "\n"
    runs = data_dir / RUNS_DIR
    path = write_text_atomic(runs / f"{run_id}.json", text)
    write_text_atomic(runs / LAST_RUN, text)
    return path
