"""Settings shared by every command: where data lives, which API to talk to, how loud to be."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import AUTODESK_BASE_URL, lake


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("APS_USAGE_DATA_DIR", "data")))
    base_url: str = field(default_factory=lambda: os.environ.get("APS_BASE_URL", AUTODESK_BASE_URL))
    verbose: int = 0
    quiet: bool = False

    def __post_init__(self) -> None:
        # an object-store URL (s3://, az://, abfss://, gs://) keeps its URL as data_dir.url;
        # data_dir itself is then the local working folder (warehouse, dbt, tokens)
        if lake.is_remote(self.data_dir):
            self.data_dir = lake.local_mirror(lake.normalize(self.data_dir))
        else:
            self.data_dir = Path(self.data_dir).expanduser().resolve()
        self.base_url = self.base_url.rstrip("/")

    @property
    def data_url(self) -> str:
        """The data dir as given: a local path, or the object-store URL."""
        return getattr(self.data_dir, "url", str(self.data_dir))

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"
