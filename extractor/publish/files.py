"""Atomic file writes: a reader (Power BI, Tableau, a browser) never sees a half-written output."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp-publish"


def temp_path_for(dest: Path) -> Path:
    """A sibling temporary path (same file system, so ``os.replace`` is atomic)."""
    return dest.with_name(f".{dest.name}.{os.getpid()}{TMP_SUFFIX}")


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on clean exit it replaces ``dest`` in one step.

    On error the temporary file is removed and ``dest`` (if it existed) is left untouched.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(dest: Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding=encoding)
    return dest


def remove_stale_temp_files(folder: Path) -> None:
    """Temporary files left by a run that was killed mid-write."""
    if folder.is_dir():
        for leftover in folder.glob(f".*{TMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)
