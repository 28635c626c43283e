"""Settings shared by every command: where data lives, which API to talk to, how loud to be."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import AUTODESK_BASE_URL


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("APS_USAGE_DATA_DIR", "data")))
    base_url: str = field(default_factory=lambda: os.environ.get("APS_BASE_URL", AUTODESK_BASE_URL))
    verbose: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        self.base_url = self.base_url.rstrip("/")

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"
