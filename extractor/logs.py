"""Logging and progress: rich on a terminal, plain lines otherwise; secrets never printed.

Every log record passes through :func:`redact`, so a token, a client secret or a pre-signed
URL that slips into a message is masked before it reaches a handler.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("aps_usage")

_registered_secrets: set[str] = set()

_PATTERNS = [
    # Authorization headers and bearer tokens
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    # key=value secrets in query strings, form bodies, JSON-ish text
    (
        re.compile(
            r"(?i)((?:access_token|refresh_token|client_secret|code_verifier|code|password|"
            r"signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token|token|adsk-pat|pat)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s&\"',;}]+"
        ),
        r"\1***",
    ),
    # any URL's query string (pre-signed URLs carry their signature there)
    (re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']+"), r"\1?***"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it appears."""
    if value and len(value) >= 6:
        _registered_secrets.add(value)


def redact(text: str) -> str:
    for secret in sorted(_registered_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger("aps_usage")
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(_RedactingFilter())
    root.addHandler(handler)
    root.propagate = False
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_tty() -> bool:
    return sys.stderr.isatty()


class _Task:
    def __init__(self, advance, description: str):
        self._advance = advance
        self.description = description

    def advance(self, n: float = 1) -> None:
        self._advance(n)


@contextmanager
def progress(description: str, total: float | None = None, quiet: bool = False) -> Iterator[_Task]:
    """A progress bar on a TTY; on a pipe, one plain line at start and one at the end.
    Inside a :class:`Steps` step (without -v) it stays silent: the step line says it all."""
    if quiet or _quiet_inside_step:
        yield _Task(lambda n: None, description)
        return
    if is_tty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=False,
        ) as bar:
            task_id = bar.add_task(description, total=total)
            yield _Task(lambda n: bar.advance(task_id, n), description)
        return
    done = [0.0]
    log.info("%s ...", description)

    def adv(n: float) -> None:
        done[0] += n

    yield _Task(adv, description)
    suffix = f" ({int(done[0])}/{int(total)})" if total else (f" ({int(done[0])})" if done[0] else "")
    log.info("%s done%s", description, suffix)


# ---- one line per step (`aps-usage run`, `aps-usage demo`) ---------------------------------------

_quiet_inside_step = False


class _BelowWarning(logging.Filter):
    """While a step runs without -v: its inner INFO lines are dropped (warnings still show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or getattr(record, "step_line", False)


@dataclass
class Step:
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    outcome: str = "running"  # ok | skipped | failed
    detail: str = ""

    def line(self) -> str:
        counts = ", ".join(f"{value:,} {key[:-1] if value == 1 and key.endswith('s') else key}"
                           for key, value in self.counts.items())
        mark = {"ok": "ok", "skipped": "skipped", "failed": "FAILED"}.get(self.outcome, self.outcome)
        parts = [f"{self.name}: {mark}"] + ([counts] if counts else []) + ([self.detail] if self.detail else [])
        return f"{' - '.join(parts)} ({self.seconds:.1f}s)"

    def as_dict(self) -> dict:
        return {"name": self.name, "outcome": self.outcome, "seconds": round(self.seconds, 3),
                "counts": self.counts, "detail": self.detail}


class Skip(Exception):
    """Raised inside a step: the step is skipped (not a failure), with this reason."""


class Steps:
    """Runs named steps, each shown as ONE line with its counts and duration.

    On a terminal a spinner shows the running step; on a pipe only the finished lines are
    printed. Without -v the steps' own INFO lines (per team, per file, per dbt node) are
    held back; with -v they show as usual. ``steps.done`` keeps every step for a summary.
    """

    def __init__(self, verbose: int = 0, quiet: bool = False):
        self.verbose, self.quiet = verbose, quiet
        self.done: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        global _quiet_inside_step
        record = Step(name)
        self.done.append(record)
        hush = not self.verbose
        handlers = logging.getLogger("aps_usage").handlers
        hold_back = _BelowWarning()
        if hush:
            for handler in handlers:
                handler.addFilter(hold_back)
        saved, _quiet_inside_step = _quiet_inside_step, hush
        spinner = self._spinner(name)
        started = time.perf_counter()
        try:
            yield record
            record.outcome = "ok"
        except Skip as why:
            record.outcome, record.detail = "skipped", str(why)
        except BaseException as err:
            record.outcome, record.detail = "failed", redact(str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise
        finally:
            record.seconds = time.perf_counter() - started
            if spinner is not None:
                spinner.stop()
            _quiet_inside_step = saved
            for handler in handlers:
                handler.removeFilter(hold_back)
            if not self.quiet or record.outcome == "failed":
                level = logging.WARNING if record.outcome == "failed" else logging.INFO
                log.log(level, "%s", record.line(), extra={"step_line": True})

    def _spinner(self, name: str):
        if self.quiet or self.verbose or not is_tty():
            return None
        from rich.console import Console

        status = Console(stderr=True).status(f"{name} ...")
        status.start()
        return status
