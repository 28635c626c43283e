"""The publish formats, apart from the writers: the CLI reads them to build its options
without loading DuckDB, plotly and the BI writers (see ``extractor/publish/__init__.py``)."""

from __future__ import annotations

from ..errors import InputError

FORMATS = ("parquet", "csv", "hyper", "pbids", "html", "pbip", "twbx")


def parse_formats(text: str | None) -> tuple[set[str], bool]:
    """``"parquet,csv"`` -> ({'parquet', 'csv'}, explicit=True); None -> every format, not explicit."""
    if not text:
        return set(FORMATS), False
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = wanted - set(FORMATS)
    if unknown or not wanted:
        raise InputError(f"--formats: unknown format(s) {', '.join(sorted(unknown)) or '(none)'}; "
                         f"choose from {','.join(FORMATS)}")
    return wanted, True
