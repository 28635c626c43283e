"""Run the dbt project in-process (dbtRunner) on the data dir's raw dataset.

``run_build(settings)`` is ``dbt build --project-dir dbt_project --profiles-dir profiles``
with the data dir wired in (env ``APS_USAGE_DATA_DIR``; dbt's target and log folders under
``<data-dir>/dbt/``), a line per finished node with -v (failed nodes always), and a ``BuildError`` naming the
failing node when anything fails. ``generate_docs(settings)`` writes the dbt docs site to
``<data-dir>/docs``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .config import Settings
from .dataset import DataDir
from .errors import BuildError, InputError
from .logs import log, redact

TARGETS = ("duckdb", "spark")

#: dbt statuses that mean a node did not do its job
FAILED_STATUSES = {"error", "fail", "runtime error"}


@dataclass
class NodeResult:
    unique_id: str
    name: str
    resource_type: str
    status: str
    message: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass
class BuildResult:
    success: bool
    target: str
    nodes: list[NodeResult] = field(default_factory=list)
    seconds: float = 0.0
    warehouse: Path | None = None

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for node in self.nodes:
            out[node.status] = out.get(node.status, 0) + 1
        return out

    def summary(self) -> str:
        by_status = ", ".join(f"{count} {status}" for status, count in sorted(self.counts().items()))
        where = f"; warehouse {self.warehouse}" if self.warehouse else ""
        return f"dbt {self.target}: {len(self.nodes)} nodes in {self.seconds:.1f}s ({by_status or 'nothing selected'}){where}"


def _bundled(folder: str, marker: str) -> Path | None:
    """``folder`` shipped inside the package (a wheel: extractor/dbt_project, extractor/profiles;
    pyproject.toml maps them from the repo's top-level folders), else the repo checkout's."""
    for candidate in (Path(str(resources.files("extractor") / folder)), Path(__file__).resolve().parent.parent / folder):
        if (candidate / marker).is_file():
            return candidate.resolve()
    return None


def dbt_project_dir() -> Path:
    """The dbt project: env APS_USAGE_DBT_DIR, else the one installed with the package (or the checkout's)."""
    configured = os.environ.get("APS_USAGE_DBT_DIR")
    found = Path(configured).resolve() if configured else _bundled("dbt_project", "dbt_project.yml")
    if found is None or not (found / "dbt_project.yml").is_file():
        raise BuildError(
            f"dbt project not found{f' at {configured}' if configured else ''} "
            "(set APS_USAGE_DBT_DIR to the folder holding dbt_project.yml)"
        )
    return found


def profiles_dir() -> Path:
    """dbt's profiles.yml folder: env APS_USAGE_PROFILES_DIR, else the one installed with the package."""
    configured = os.environ.get("APS_USAGE_PROFILES_DIR")
    found = Path(configured).resolve() if configured else _bundled("profiles", "profiles.yml")
    if found is None or not (found / "profiles.yml").is_file():
        raise BuildError(
            f"dbt profiles.yml not found{f' in {configured}' if configured else ''} (set APS_USAGE_PROFILES_DIR)"
        )
    return found


def parse_vars(pairs: Sequence[str]) -> dict:
    """``name=value`` strings -> dict; values are read as JSON when they parse (numbers, null), else as text."""
    out: dict = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--var expects name=value, got {pair!r}")
        try:
            out[name.strip()] = json.loads(value)
        except ValueError:
            out[name.strip()] = value
    return out


@contextmanager
def _dbt_environment(settings: Settings) -> Iterator[None]:
    """dbt reads the data dir from env APS_USAGE_DATA_DIR (profiles and sources): set it for the run only."""
    saved = {k: os.environ.get(k) for k in ("APS_USAGE_DATA_DIR", "APS_USAGE_DATA_URL", "DBT_SEND_ANONYMOUS_USAGE_STATS")}
    os.environ["APS_USAGE_DATA_DIR"] = str(settings.data_dir)
    os.environ["APS_USAGE_DATA_URL"] = settings.data_url  # the raw tables (an object-store URL, or the same folder)
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise InputError(f"unknown dbt target {target!r}: choose one of {', '.join(TARGETS)}")
    if target == "spark":
        try:
            import dbt.adapters.spark  # noqa: F401
            import pyspark  # noqa: F401
        except ImportError as err:
            raise BuildError(f"target spark needs pyspark and dbt-spark (pip install 'aps-usage[spark]'): {err}") from None


def _one_line(text: str, limit: int = 400) -> str:
    # dbt appends "> in macro ... > called by ..." frames: the user needs the first part only
    flat = " ".join(str(text).split(" > in macro ")[0].split())
    return redact(flat if len(flat) <= limit else flat[: limit - 3] + "...")


def run_dbt(
    settings: Settings,
    command: Sequence[str],
    *,
    target: str = "duckdb",
    vars: Mapping | None = None,
    target_path: Path | None = None,
    on_node: Callable[[NodeResult, int, int], None] | None = None,
):
    """Invoke one dbt command in-process against the data dir; returns dbt's ``dbtRunnerResult``."""
    from dbt.cli.main import dbtRunner

    _check_target(target)
    project = dbt_project_dir()
    # every raw Delta table must exist (a dataset never extracted reads as zero rows), and
    # its current files are listed for the views of the on-run-start hook
    DataDir(settings.data_dir).ensure_schema_files()
    dbt_dir = settings.data_dir / "dbt"
    options = [
        "--project-dir", str(project),
        "--profiles-dir", str(profiles_dir()),
        "--target", target,
        "--target-path", str(target_path or dbt_dir / "target"),
        "--log-path", str(dbt_dir / "logs"),
        "--log-level", "none",  # our own progress lines; the full log goes to dbt/logs/dbt.log
        "--log-level-file", "info",
    ]
    if vars:
        options += ["--vars", json.dumps(dict(vars))]

    state = {"done": 0, "total": 0}

    def callback(event) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            state["total"] = event.data.node_count
        elif name == "LogStartLine":  # a build adds its unit tests to the count after ConcurrencyLine
            state["total"] = max(state["total"], event.data.total)
        elif name == "NodeFinished" and on_node is not None:
            info = event.data.node_info
            result = event.data.run_result
            state["done"] += 1
            node = NodeResult(
                unique_id=info.unique_id,
                name=info.node_name,
                resource_type=info.resource_type,
                status=result.status or info.node_status,
                message=result.message,
                seconds=result.execution_time,
            )
            on_node(node, state["done"], state["total"])

    with _dbt_environment(settings):
        try:
            return dbtRunner(callbacks=[callback]).invoke([*command, *options])
        finally:
            _release_duckdb()


def _release_duckdb() -> None:
    """dbt-duckdb keeps its database open in a class attribute after the run; close it so the
    warehouse can be opened again in this process (publish, tests) with another configuration."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    with DuckDBConnectionManager._LOCK:
        environment = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if environment is not None:
            try:
                environment.close()
            except Exception as err:  # closing is best effort; the run's result stands
                log.debug("closing dbt's DuckDB connection: %s", err)


def _log_node(node: NodeResult, done: int, total: int) -> None:
    width = len(str(total or done))
    status = node.status.upper()
    line = f"[{done:>{width}}/{total or '?'}] {status:<7} {node.resource_type} {node.name} ({node.seconds:.2f}s)"
    if node.failed:
        log.warning("%s: %s", line, _one_line(node.message, 200))
    else:
        log.info("%s", line)


def _log_failed_node(node: NodeResult, done: int, total: int) -> None:
    if node.failed:
        _log_node(node, done, total)


def run_build(
    settings: Settings,
    target: str = "duckdb",
    vars: Mapping | None = None,
    select: Sequence[str] | str | None = None,
    *,
    exclude: Sequence[str] | str | None = None,
    full_refresh: bool = False,
    on_node: Callable[[NodeResult, int, int], None] | None = None,
) -> BuildResult:
    """``dbt build`` on the data dir: seeds, models, tests. Raises BuildError naming the first failing node."""
    command = ["build"]
    for flag, value in (("--select", select), ("--exclude", exclude)):
        if value:
            command += [flag, *([value] if isinstance(value, str) else list(value))]
    if select:
        # a test runs only when everything it reads is selected (no test on a missing table)
        command += ["--indirect-selection", "cautious"]
    if full_refresh:
        command.append("--full-refresh")
    if on_node is None:
        # a line per node only with -v; otherwise failures only (the caller prints the summary)
        on_node = _log_node if settings.verbose and not settings.quiet else _log_failed_node

    started = time.monotonic()
    log.info("dbt build (target %s) on %s ...", target, settings.data_dir)
    # Hold the data dir: an extraction committing during the build would hand dbt a mix of
    # old and new months. A concurrent extract or import is refused (exit 5) or queues.
    with DataDir(settings.data_dir).lock("dbt build"):
        outcome = run_dbt(settings, command, target=target, vars=vars, on_node=on_node)
    result = BuildResult(
        success=bool(outcome.success),
        target=target,
        seconds=time.monotonic() - started,
        warehouse=settings.warehouse_path if target == "duckdb" else None,
    )
    for run_result in getattr(outcome.result, "results", None) or []:
        node = run_result.node
        result.nodes.append(
            NodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=str(node.resource_type),
                status=str(run_result.status),
                message=run_result.message or "",
                seconds=run_result.execution_time or 0.0,
            )
        )
    log_file = settings.data_dir / "dbt" / "logs" / "dbt.log"
    if outcome.exception is not None:
        raise BuildError(f"dbt build failed: {_one_line(outcome.exception)} (log: {log_file})")
    failures = result.failures
    if failures or not result.success:
        if failures:
            first = failures[0]
            more = f" (+{len(failures) - 1} more failing node(s))" if len(failures) > 1 else ""
            raise BuildError(
                f"dbt build failed at {first.resource_type} {first.name}: {_one_line(first.message)}{more} (log: {log_file})"
            )
        raise BuildError(f"dbt build failed (log: {log_file})")
    return result


def generate_docs(settings: Settings, target: str = "duckdb") -> Path:
    """``dbt docs generate`` into ``<data-dir>/docs`` (index.html, static_index.html, manifest, catalog)."""
    docs_dir = settings.data_dir / "docs"
    outcome = run_dbt(settings, ["docs", "generate", "--static"], target=target, target_path=docs_dir)
    if outcome.exception is not None or not outcome.success:
        detail = _one_line(outcome.exception) if outcome.exception is not None else "see the dbt log"
        raise BuildError(f"dbt docs generate failed: {detail} (log: {settings.data_dir / 'dbt' / 'logs' / 'dbt.log'})")
    return docs_dir
