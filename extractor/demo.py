"""The one-command demo: sandbox -> extract both APIs -> import metadata -> build -> publish.

Everything runs in this process: the sandbox serves on a free loopback port from a thread,
the extractors talk HTTP to it with the sandbox credentials, dbt builds the DuckDB
warehouse, and publish writes the BI outputs. The demo only ever writes into a data dir
that is empty or that an earlier demo wrote (marker ``state/demo.json``), so it cannot mix
sandbox rows into real data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import InputError
from .logs import Steps, register_secret

if TYPE_CHECKING:  # publishing loads DuckDB and the BI writers: only when the demo runs
    from .publish import PublishResult

log = logging.getLogger("aps_usage")

#: default size: chosen so the whole demo stays well under 60 s on a 2-core machine
DEFAULT_USERS = 120
DEFAULT_DAYS = 120
DEFAULT_SEED = 42
#: sandbox job delays (export and query polling) scaled down: the demo shows the flow, not the waits
SANDBOX_TIME_SCALE = 0.002
SANDBOX_CREDENTIALS = ("sandbox-client", "sandbox-secret", "sandbox-pat")
MARKER = "demo.json"
#: what an earlier demo wrote and a new demo replaces
DEMO_OUTPUTS = ("raw", "marts", "bi", "downloads", "warehouse.duckdb", "warehouse.duckdb.wal")


@dataclass
class DemoResult:
    data_dir: Path
    base_url: str = ""
    source_rows: dict[str, int] = field(default_factory=dict)
    downloads: list[Path] = field(default_factory=list)
    imported: dict[str, Any] = field(default_factory=dict)
    publish: PublishResult | None = None
    findings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


def prepare_data_dir(data_dir: Path, options: dict[str, Any]) -> None:
    """Refuse a data dir holding data the demo did not write; clear an earlier demo's outputs."""
    marker = data_dir / "state" / MARKER
    holds_data = any((data_dir / name).exists() for name in ("raw", "warehouse.duckdb"))
    if holds_data and not marker.exists():
        raise InputError(
            f"{data_dir}: holds data that the demo did not write; run the demo with another "
            "--data-dir (for example `aps-usage demo --data-dir demo-data`)"
        )
    for name in DEMO_OUTPUTS:
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"demo": True, "started": dt.datetime.now(dt.UTC).isoformat(),
                                  **options}, indent=2) + "\n", encoding="utf-8")


def run_demo(
    settings: Settings,
    users: int = DEFAULT_USERS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
) -> DemoResult:
    """Run the whole pipeline on sandbox data into ``settings.data_dir``."""
    from .auth import Auth, Credentials, FileTokenStore
    from .build import run_build
    from .importing import import_paths
    from .premium import extract_premium
    from .sandbox.app import create_app
    from .sandbox.files import write_files
    from .sandbox.server import start_in_thread
    from .tokenflex import extract_tokenflex

    if users < 1 or days < 1:
        raise InputError("--users and --days must be at least 1")
    prepare_data_dir(settings.data_dir, {"users": users, "days": days, "seed": seed})
    result = DemoResult(data_dir=settings.data_dir)
    steps = Steps(verbose=settings.verbose, quiet=settings.quiet)

    try:
        with steps.step("Generating sandbox data") as step:
            try:
                app = create_app(seed=seed, users=users, days=days, time_scale=SANDBOX_TIME_SCALE)
            except ValueError as err:  # e.g. fewer users than the sandbox has personas
                raise InputError(f"--users/--days: {err}") from err
            data = app.state.data
            step.counts = {"users": users, "days": days}
        server = start_in_thread(app)
        try:
            result.base_url = server.base_url
            api_settings = Settings(data_dir=settings.data_dir, base_url=server.base_url,
                                    verbose=settings.verbose, quiet=settings.quiet)
            for secret in SANDBOX_CREDENTIALS[1:]:  # sandbox values, but secrets all the same
                register_secret(secret)
            auth = Auth(api_settings, Credentials(*SANDBOX_CREDENTIALS),
                        FileTokenStore(api_settings.state_dir / "demo-token.json"))
            try:
                with steps.step("Extracting Premium Reporting (insights/v1)") as step:
                    premium = extract_premium(api_settings, auth, since=data.start_date, until=data.end_date)
                    step.counts = {"teams": len(premium.teams), "rows": sum(premium.rows.values())}
                with steps.step("Extracting Token Flex (tokenflex/v1)") as step:
                    tokenflex = extract_tokenflex(api_settings, auth, since=data.start_date, until=data.end_date)
                    step.counts = {"contracts": len(tokenflex.contracts), "rows": sum(tokenflex.rows.values())}
            finally:
                auth.close()
        finally:
            server.stop()

        with steps.step("Writing the hand-download files and importing user metadata") as step:
            downloads = settings.data_dir / "downloads"
            result.downloads = sorted(Path(p) for p in write_files(data, downloads))
            metadata = [p for p in result.downloads if p.name.startswith("user_metadata")]
            if not metadata:
                raise InputError(f"{downloads}: the sandbox wrote no user_metadata file")
            report = import_paths(settings, metadata)
            result.imported = {"files": [str(p) for p in metadata], "result": report}
            step.counts = {"files": len(result.downloads), "metadata rows": report.rows}

        with steps.step("Building the marts with dbt (DuckDB)") as step:
            build = run_build(settings, target="duckdb")
            step.counts = build_counts(build)

        with steps.step("Publishing the marts, the Power BI project, the Tableau workbook and the report") as step:
            from .publish import publish

            result.publish = publish(settings)
            step.counts = {"marts": len(result.publish.marts),
                           "files": sum(len(v) for v in result.publish.outputs.values())}
    finally:
        result.timings = {s.name: s.seconds for s in steps.done}

    result.source_rows = source_rows(settings.data_dir)
    result.findings = headline_findings(settings.warehouse_path)
    return result


def build_counts(build) -> dict[str, int]:
    """dbt nodes per kind (``model``, ``test``, ...), for a step's one line."""
    counts: dict[str, int] = {}
    for node in build.nodes:
        kind = node.resource_type.split(".")[-1].lower().replace("_", " ")
        if kind != "operation":  # the project's on-run-end hook, not a node of the graph
            counts[kind] = counts.get(kind, 0) + 1
    return {f"{kind}s": n for kind, n in counts.items()}


def source_rows(data_dir: Path) -> dict[str, int]:
    from .dataset import DataDir

    return {row["dataset"]: int(row["rows"]) for row in DataDir(data_dir).stats()}


def headline_findings(warehouse: Path) -> list[str]:
    import duckdb

    from .publish.findings import headline_findings as findings_of

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return findings_of(con)
    finally:
        con.close()
