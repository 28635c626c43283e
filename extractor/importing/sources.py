"""Paths -> the tables inside them: folders, ZIP archives (one level of nesting), gzip, the
sheets of an XLSX workbook, CSV files.

The format comes from the bytes, never the name. Archives are read defensively: a member
whose path holds ``..`` or is absolute makes the whole archive an error, and an archive
whose members add up to more than :data:`MAX_UNCOMPRESSED_BYTES`, or compress better than
:data:`MAX_COMPRESSION_RATIO` to 1, is refused as a likely zip bomb (gzip streams are cut
off at the same limits while they are read). Nothing is extracted to a path named by the
archive: members are streamed, or copied to an anonymous temporary file when openpyxl or
zipfile need to seek.

Inside a folder, an archive or a workbook, an entry that is not a table we know (a README,
a PDF, a sheet of notes) is skipped with a warning; a file named on the command line that
is not one is an error.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..errors import InputError
from ..logs import log
from .readers import RawTable, open_csv, sheet_table
from .sniff import container_format

MAX_UNCOMPRESSED_BYTES = int(os.environ.get("APS_USAGE_MAX_UNCOMPRESSED_BYTES", 32 << 30))
MAX_COMPRESSION_RATIO = int(os.environ.get("APS_USAGE_MAX_COMPRESSION_RATIO", 250))
_RATIO_FLOOR_BYTES = 16 << 20  # small members may compress as well as they like
_MAX_NESTING = 1

Opener = Callable[[], AbstractContextManager[RawTable]]


class InputEntry(tuple):
    """``(display_name, opener)``; ``opener()`` is a context manager giving a :class:`RawTable`.

    ``optional``: the entry came out of a folder, an archive or a workbook, so an entry that
    turns out not to be a known kind of table is skipped rather than an error. An opener is
    valid until the iterator that produced it moves on.
    """

    def __new__(cls, name: str, opener: Opener, *, optional: bool = False):
        entry = super().__new__(cls, (name, opener))
        entry.optional = optional
        return entry

    @property
    def name(self) -> str:
        return self[0]

    @property
    def opener(self) -> Opener:
        return self[1]


def _skip_or_fail(display: str, problem: str, optional: bool, skipped: list[tuple[str, str]] | None) -> None:
    if not optional:
        raise InputError(f"{display}: {problem}")
    log.warning("%s: skipped: %s", display, problem)
    if skipped is not None:
        skipped.append((display, problem))


def _ignored_name(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    base = parts[-1] if parts else name
    return "__MACOSX" in parts or base.startswith((".", "~$")) or base in ("Thumbs.db", "desktop.ini")


def iter_files(paths: Iterable[str | os.PathLike[str]], *, name: str | None = None,
               skipped: list[tuple[str, str]] | None = None) -> Iterator[InputEntry]:
    """Every table in ``paths`` as ``(display_name, opener)``; ``name`` renames a single file;
    entries of folders and archives that are not tables are logged and added to ``skipped``."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _ignored_name(str(p.relative_to(path))))
            if not files:
                raise InputError(f"{path}: the folder holds no files")
            for f in files:
                yield from _file_entries(f, str(f.relative_to(path.parent)), True, skipped)
        elif path.is_file():
            yield from _file_entries(path, name or path.name, False, skipped)
        else:
            what = "not a regular file or folder" if path.exists() else "no such file or folder"  # /dev/zero, a FIFO
            raise InputError(f"{path}: {what}")


def _file_entries(path: Path, display: str, optional: bool, skipped) -> Iterator[InputEntry]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise InputError(f"{display}: cannot read ({err.strerror})") from None
    size = path.stat().st_size
    kind = container_format(head)
    if kind == "empty":
        _skip_or_fail(display, "empty file", optional, skipped)
    elif kind == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                yield from _zip_entries(archive, display, 0, lambda: open(path, "rb"), skipped)
        except zipfile.BadZipFile as err:
            raise InputError(f"{display}: not a readable ZIP/XLSX file ({err})") from None
    elif kind == "gzip":
        yield from _gzip_entries(lambda: open(path, "rb"), display, size, optional, skipped)
    elif kind == "text":
        yield InputEntry(display, lambda: open_csv(display, lambda: open(path, "rb"), size=size), optional=optional)
    else:
        _skip_or_fail(display, f"unknown file type ({kind}); expected CSV, XLSX, ZIP or gzip", optional, skipped)


# ---- ZIP -------------------------------------------------------------------------------

def _unsafe(name: str) -> bool:
    normal = name.replace("\\", "/")
    return normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or ".." in normal.split("/")


def check_archive(archive: zipfile.ZipFile, display: str) -> list[zipfile.ZipInfo]:
    """The member files, after refusing unsafe names and zip bombs."""
    infos = archive.infolist()
    for info in infos:
        if _unsafe(info.filename):
            raise InputError(f"{display}: unsafe path in ZIP archive: {info.filename!r} (absolute or with '..')")
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise InputError(
            f"{display}: ZIP archive would unpack to {total:,} bytes, over the limit of "
            f"{MAX_UNCOMPRESSED_BYTES:,} (APS_USAGE_MAX_UNCOMPRESSED_BYTES)"
        )
    for info in infos:
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise InputError(
                f"{display}: ZIP member {info.filename!r} compresses {info.file_size // max(info.compress_size, 1)}:1, "
                f"over the limit of {MAX_COMPRESSION_RATIO}:1 (a zip bomb?)"
            )
    return [i for i in infos if not i.is_dir()]


def _is_workbook(archive: zipfile.ZipFile) -> bool:
    names = set(archive.namelist())
    return "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names)


def _zip_entries(archive: zipfile.ZipFile, display: str, depth: int, open_self: Callable[[], IO[bytes]],
                 skipped) -> Iterator[InputEntry]:
    members = check_archive(archive, display)
    if _is_workbook(archive):
        yield from _workbook_entries(open_self, display)
        return
    if not members:
        raise InputError(f"{display}: the ZIP archive is empty")
    for info in members:
        member = f"{display}!{info.filename}"
        if _ignored_name(info.filename):
            continue
        if info.flag_bits & 0x1:
            raise InputError(f"{member}: the ZIP member is encrypted")
        if info.file_size == 0:
            _skip_or_fail(member, "empty file", True, skipped)
            continue
        open_member = _member_opener(archive, info, member)
        with open_member() as fh:
            head = fh.read(8)
        kind = container_format(head)
        if kind == "text":
            yield InputEntry(member, _csv_opener(member, open_member, info.file_size), optional=True)
        elif kind == "gzip":
            yield from _gzip_entries(open_member, member, info.compress_size, True, skipped)
        elif kind == "zip":
            if depth >= _MAX_NESTING:
                _skip_or_fail(member, "ZIP nested more than one level deep", True, skipped)
                continue
            with _spooled(open_member, member) as copy:
                try:
                    with zipfile.ZipFile(copy) as inner:
                        yield from _zip_entries(inner, member, depth + 1, lambda: _reopen(copy), skipped)
                except zipfile.BadZipFile as err:
                    raise InputError(f"{member}: not a readable ZIP/XLSX file ({err})") from None
        else:
            _skip_or_fail(member, f"unknown file type ({kind})", True, skipped)


def _csv_opener(display: str, open_stream: Callable[[], IO[bytes]], size: int | None) -> Opener:
    return lambda: open_csv(display, open_stream, size=size)


def _member_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo, display: str) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        try:
            return _Guarded(archive.open(info), display)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as err:
            raise InputError(f"{display}: cannot read the ZIP member ({err})") from None
    return open_member


class _Guarded:
    """A decompressing stream whose failures (bad CRC, truncation, over the size limit) are InputErrors."""

    def __init__(self, stream: IO[bytes], display: str, limit: int | None = None, closes: Any = None):
        self._stream = stream
        self._display = display
        self._limit = limit
        self._closes = closes
        self._read = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._stream.read(n)
        except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
            raise InputError(f"{self._display}: corrupt compressed data ({err})") from None
        self._read += len(data)
        if self._limit is not None and self._read > self._limit:
            raise InputError(
                f"{self._display}: unpacks to more than {self._limit:,} bytes "
                f"(limit APS_USAGE_MAX_UNCOMPRESSED_BYTES / APS_USAGE_MAX_COMPRESSION_RATIO; a gzip bomb?)"
            )
        return data

    def readable(self) -> bool:
        return True

    # io.TextIOWrapper (the strict re-read that names a bad row) asks for these too
    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def close(self) -> None:
        self._stream.close()
        if self._closes is not None:
            self._closes.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def _spooled(open_stream: Callable[[], IO[bytes]], display: str) -> Iterator[IO[bytes]]:
    """A seekable anonymous copy (zipfile and openpyxl need to seek)."""
    with tempfile.TemporaryFile(prefix="aps-usage-") as copy:
        with open_stream() as src:
            shutil.copyfileobj(src, copy, 1 << 20)
        copy.seek(0)
        yield copy


def _reopen(copy: IO[bytes]) -> IO[bytes]:
    copy.seek(0)
    return _Unclosable(copy)


class _Unclosable:
    """The spooled copy handed out again; closing it must not delete it under its owner."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# ---- gzip ------------------------------------------------------------------------------

def _gzip_entries(open_compressed: Callable[[], IO[bytes]], display: str, compressed_size: int | None,
                  optional: bool, skipped) -> Iterator[InputEntry]:
    limit = MAX_UNCOMPRESSED_BYTES
    if compressed_size:
        limit = min(limit, max(_RATIO_FLOOR_BYTES, MAX_COMPRESSION_RATIO * compressed_size))

    def open_plain() -> IO[bytes]:
        raw = open_compressed()
        return _Guarded(gzip.GzipFile(fileobj=raw, mode="rb"), display, limit, closes=raw)

    with open_plain() as fh:
        head = fh.read(8)
    kind = container_format(head)
    if kind == "text":
        yield InputEntry(display, _csv_opener(display, open_plain, None), optional=optional)
    elif kind == "zip":
        with _spooled(open_plain, display) as copy:
            try:
                with zipfile.ZipFile(copy) as inner:
                    yield from _zip_entries(inner, display, 1, lambda: _reopen(copy), skipped)
            except zipfile.BadZipFile as err:
                raise InputError(f"{display}: not a readable ZIP/XLSX file ({err})") from None
    elif kind == "empty":
        _skip_or_fail(display, "empty file", optional, skipped)
    else:
        _skip_or_fail(display, f"unknown file type inside gzip ({kind})", optional, skipped)


# ---- XLSX ------------------------------------------------------------------------------

def _workbook_entries(open_book: Callable[[], IO[bytes]], display: str) -> Iterator[InputEntry]:
    import openpyxl

    with open_book() as fh:
        try:
            book = openpyxl.load_workbook(fh, read_only=True, data_only=True)
        except Exception as err:  # openpyxl raises many types for a damaged workbook
            raise InputError(f"{display}: not a readable XLSX workbook ({type(err).__name__}: {err})") from None
        try:
            sheets = list(book.worksheets)
            if not sheets:
                raise InputError(f"{display}: the workbook has no sheets")
            for sheet in sheets:
                sheet_name = f"{display}#{sheet.title}"
                yield InputEntry(sheet_name, _sheet_opener(sheet_name, sheet), optional=True)
        finally:
            book.close()


def _sheet_opener(display: str, sheet: Any) -> Opener:
    @contextmanager
    def opener() -> Iterator[RawTable]:
        yield sheet_table(display, sheet)
    return opener
