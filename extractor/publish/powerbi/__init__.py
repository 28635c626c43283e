"""Power BI: a Power BI Project (PBIP) of the Parquet marts, opened by double-clicking the .pbip.

    bi/powerbi/aps-usage.pbip
    bi/powerbi/aps-usage.SemanticModel/   definition.pbism + definition/*.tmdl (tmdl.py)
    bi/powerbi/aps-usage.Report/          definition.pbir + definition/** (pbir.py)

Written into a temporary sibling folder and swapped in whole, so Power BI Desktop never sees
half a project; files are written in a fixed order with LF line ends, so two publishes of the
same marts give the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..files import TMP_SUFFIX
from ..semantic import BIModel
from .pbir import report_files
from .tmdl import semantic_model_files

PROJECT = "aps-usage"
PBIP_SCHEMA = "https://developer.microsoft.com/json-schemas/fabric/pbip/pbipProperties/1.0.0/schema.json"
PBISM_SCHEMA = ("https://developer.microsoft.com/json-schemas/fabric/item/semanticModel/definitionProperties/"
                "1.0.0/schema.json")


def dump_json(document: dict) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def project_files(model: BIModel, marts_folder: str) -> dict[str, str]:
    """Relative path (under bi/powerbi) -> file text of the whole project."""
    semantic, report = f"{PROJECT}.SemanticModel", f"{PROJECT}.Report"
    files = {
        f"{PROJECT}.pbip": dump_json({"$schema": PBIP_SCHEMA, "version": "1.0",
                                      "artifacts": [{"report": {"path": report}}],
                                      "settings": {"enableAutoRecovery": True}}),
        f"{semantic}/definition.pbism": dump_json({"$schema": PBISM_SCHEMA, "version": "4.2", "settings": {}}),
        ".gitignore": "**/.pbi/localSettings.json\n**/.pbi/cache.abf\n",
    }
    for path, text in semantic_model_files(model, marts_folder).items():
        files[f"{semantic}/definition/{path}"] = text
    for path, document in report_files(model, semantic).items():
        files[f"{report}/{path}"] = dump_json(document)
    return files


def write_pbip(model: BIModel, marts_folder: Path, dest: Path) -> Path:
    """Write the project into folder ``dest`` (replaced whole); returns the .pbip file."""
    tmp = dest.with_name(f".{dest.name}{TMP_SUFFIX}")
    shutil.rmtree(tmp, ignore_errors=True)
    for path, text in sorted(project_files(model, str(marts_folder)).items()):
        target = tmp / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode("utf-8"))
    old = dest.with_name(f".{dest.name}.old{TMP_SUFFIX}")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest / f"{PROJECT}.pbip"
