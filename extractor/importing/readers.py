"""CSV and XLSX sheets -> a header row plus batches of text columns (:class:`RawTable`).

CSV is streamed: Arrow's CSV reader parses blocks of a few MiB from a UTF-8 byte stream
(other encodings are transcoded on the way), every column read as bytes and checked as
UTF-8 per column and batch, so an invalid byte is reported with its row and column. When
Arrow rejects the file (a ragged row, a stray quote), the file is read again with Python's
strict ``csv`` module only to say which row is wrong. XLSX sheets are read with openpyxl in
read-only mode, row by row.

Row numbers are what a spreadsheet shows: the header is row 1 when it is the first line,
the first data row is the next one (blank lines are not counted in CSV data).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ..errors import InputError
from ..schemas import TEXT
from ..staging import rechunked
from .headers import normalise_header
from .kinds import looks_like_header
from .sniff import SAMPLE_SIZE, Encoding, detect_encoding, looks_binary, sniff_delimiter, utf8_error_offset

_QUOTE = ord('"')
HEADER_SEARCH_ROWS = 10  # title lines allowed above the header row
# Arrow's streaming reader reads blocks on a background thread up to 32 ahead of the parser,
# so the block size sets that memory: 512 KiB blocks hold up to 16 MB (1 MiB: 32 MB, 4 MiB:
# 128 MB) for about 10% more parsing time than 1 MiB. (Blocking that thread in read() to
# bound it is not safe: it may be waiting there when the interpreter exits after an error.)
CSV_BLOCK_SIZE = 1 << 19
XLSX_BATCH_ROWS = 20_000
# rows per batch handed to the typing: Arrow's reader yields a batch per block (~3,000 rows of
# a usage export), and typing each column costs a dozen compute calls whatever its length
# (typing per block: 2.4 s for 2M rows, per 32k rows: 1.3 s). 64k was as fast and peaked
# 20-50 MB higher. The importer's STAGE_ROWS: each typed batch goes to the writer whole.
CSV_BATCH_ROWS = 32_000


class EmptyFile(InputError):
    """No header at all (an empty file or sheet): skipped inside archives, an error alone."""


@dataclass
class RawBatch:
    columns: list[pa.Array]  # text, one per header
    first_row: int
    row_numbers: list[int] | None = None  # when rows are not consecutive (XLSX blank rows)
    position: int = 0  # bytes of the input consumed so far (progress)

    @property
    def num_rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def row(self, index: int) -> int:
        return self.row_numbers[index] if self.row_numbers else self.first_row + index


@dataclass
class RawTable:
    source: str
    headers: list[str]
    header_row: int
    batches: Iterator[RawBatch]
    excel: bool = False  # numbers in date columns are Excel serial days
    decimal_comma: bool = False  # ';'-separated: '12,5' is a decimal
    size: int | None = None  # bytes, when known (progress)
    info: dict[str, Any] = field(default_factory=dict)


# ---- CSV -------------------------------------------------------------------------------

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


def _read_up_to(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _decoder(encoding: Encoding):
    errors = "replace" if encoding.codec == "cp1252" else "strict"
    return codecs.getincrementaldecoder(encoding.codec)(errors)


def find_header(lines: list[str]) -> tuple[int, str, list[str]]:
    """(index of the header line, delimiter, header cells) among the first lines of a file."""
    first: tuple[int, str, list[str]] | None = None
    seen = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        delimiter = sniff_delimiter(line)
        cells = next(csv.reader([line.rstrip("\r\n")], delimiter=delimiter), [])
        if first is None:
            first = (index, delimiter, cells)
        if looks_like_header([normalise_header(c) for c in cells]):
            return index, delimiter, cells
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            break
    if first is None:
        raise ValueError("no header")
    return first


class _Utf8Stream:
    """What Arrow reads: the bytes after the header as UTF-8; counts bytes and quotes."""

    def __init__(self, prefix: bytes, rest: IO[bytes], encoding: Encoding, skip_chars: int = 0, offset: int = 0):
        self._prefix = prefix
        self._rest = rest
        self._decoder = None if encoding.is_utf8 else _decoder(encoding)
        self._skip_chars = skip_chars
        self._pending = b""
        self._eof = False
        self.raw_bytes = offset  # bytes of the input consumed, the header included (progress)
        self.quotes = 0
        self.closed = False

    def _raw_read(self, n: int) -> bytes:
        if self._prefix:
            chunk, self._prefix = self._prefix[:n], self._prefix[n:]
        else:
            chunk = self._rest.read(n)
        self.raw_bytes += len(chunk)
        return chunk

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        if self._decoder is None:
            out = self._raw_read(n)
        else:
            while len(self._pending) < n and not self._eof:
                raw = self._raw_read(n)
                if not raw:
                    self._eof = True
                text = self._decoder.decode(raw, final=self._eof)
                if self._skip_chars:
                    dropped = text[: self._skip_chars]
                    self._skip_chars -= len(dropped)
                    text = text[len(dropped):]
                self._pending += text.encode("utf-8")
            out, self._pending = self._pending[:n], self._pending[n:]
        # numpy's comparison, not bytes.count: 0.03 s for a 316 MB file instead of 0.17, on the
        # thread Arrow reads ahead with, which holds the GIL meanwhile
        self.quotes += int(np.count_nonzero(np.frombuffer(out, np.uint8) == _QUOTE))
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


@contextmanager
def open_csv(source: str, open_stream: Callable[[], IO[bytes]], *, size: int | None = None) -> Iterator[RawTable]:
    """A CSV (any supported encoding and delimiter) as a :class:`RawTable`; streams."""
    stream = open_stream()
    try:
        sample = _read_up_to(stream, SAMPLE_SIZE)
        if not sample.strip():
            raise EmptyFile(f"{source}: empty file")
        encoding = detect_encoding(sample)
        complete = len(sample) < SAMPLE_SIZE
        try:
            text = _decoder(encoding).decode(sample[encoding.bom:], final=complete)
        except UnicodeDecodeError as err:
            raise InputError(f"{source}: cannot decode as {encoding.codec} at byte {err.start}") from None
        if looks_binary(text):
            raise InputError(f"{source}: unknown file type (binary content, not CSV or XLSX)")
        lines = _LINE.findall(text)
        if not complete and lines and not lines[-1].endswith(("\n", "\r")):
            lines.pop()  # cut by the sample's end
        if not lines:
            raise InputError(f"{source}: no header line in the first {SAMPLE_SIZE // 1024} KiB")
        try:
            index, delimiter, headers = find_header(lines)
        except ValueError:
            raise EmptyFile(f"{source}: empty file") from None
        data_chars = sum(len(line) for line in lines[: index + 1])
        if encoding.is_utf8:
            start = encoding.bom + len(text[:data_chars].encode("utf-8"))
            data = _Utf8Stream(sample[start:], stream, encoding, offset=start)
        else:
            data = _Utf8Stream(sample[encoding.bom:], stream, encoding, skip_chars=data_chars, offset=encoding.bom)
        header_row = index + 1
        reader = _CsvBatches(source, open_stream, data, encoding, delimiter, headers, header_row)
        yield RawTable(
            source=source,
            headers=headers,
            header_row=header_row,
            batches=iter(reader),
            decimal_comma=delimiter == ";",
            size=size,
            info={"encoding": encoding.codec, "delimiter": delimiter},
        )
    finally:
        stream.close()


class _CsvBatches:
    def __init__(self, source, open_stream, data: _Utf8Stream, encoding: Encoding, delimiter: str,
                 headers: list[str], header_row: int):
        self.source = source
        self.open_stream = open_stream
        self.data = data
        self.encoding = encoding
        self.delimiter = delimiter
        self.headers = headers
        self.header_row = header_row

    def __iter__(self) -> Iterator[RawBatch]:
        names = [f"c{i}" for i in range(len(self.headers))]
        # no reader threads: a read-ahead thread outrunning a CPU-starved converter buffers blocks
        read_options = pa_csv.ReadOptions(column_names=names, block_size=CSV_BLOCK_SIZE, use_threads=False)
        parse_options = pa_csv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True,
                                            ignore_empty_lines=True)
        # dictionary-encoded as parsed: the same users, products and days repeat on every
        # batch, so typing, the row hash, the split by month and the Parquet writer each
        # handle a column's distinct values, not its cells (see docs/design.md)
        convert_options = pa_csv.ConvertOptions(
            column_types={n: pa.dictionary(pa.int32(), pa.binary()) for n in names}, strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        row = self.header_row + 1
        try:
            try:
                reader = pa_csv.open_csv(self.data, read_options=read_options, parse_options=parse_options,
                                         convert_options=convert_options)
            except pa.ArrowInvalid as err:
                if str(err).startswith("Empty CSV file"):  # a header and no rows: zero rows, not an error
                    return
                raise
            for table in rechunked(reader, CSV_BATCH_ROWS):
                table = table.combine_chunks()
                columns = [self._text(table.column(i).chunk(0), i, row) for i in range(table.num_columns)]
                yield RawBatch(columns, row, position=self.data.raw_bytes)
                row += table.num_rows
        except pa.ArrowInvalid as err:
            raise self._diagnose(str(err)) from None
        if self.data.quotes % 2:  # an odd number of quotes: maybe a quote never closed
            problem = self._diagnose(None)
            if problem is not None:
                raise problem

    def _text(self, column: pa.DictionaryArray, index: int, first_row: int) -> pa.DictionaryArray:
        try:  # only the distinct values are checked as UTF-8
            return column.cast(TEXT)
        except pa.ArrowInvalid:
            # cell by cell, to name the row: the dictionary of a batch cut from Arrow's blocks
            # also holds the values of the block's rows outside the batch
            cells = column.cast(pa.binary())
            for offset, value in enumerate(cells.to_pylist()):
                bad = utf8_error_offset(value)
                if bad is not None:
                    raise InputError(
                        f"{self.source}: row {first_row + offset}, column '{self.headers[index]}': "
                        f"invalid UTF-8 byte 0x{value[bad]:02x} (the file is not UTF-8 throughout; "
                        "save it as UTF-8)"
                    ) from None
            return pc.dictionary_encode(cells).cast(TEXT)  # the bad value is a later batch's

    def _diagnose(self, arrow_message: str | None) -> InputError | None:
        """Read again with Python's strict csv module to name the bad row."""
        codec = {"utf-8": "utf-8-sig"}.get(self.encoding.codec, self.encoding.codec)
        if self.encoding.bom and codec.startswith("utf-16"):
            codec = "utf-16"
        expected = len(self.headers)
        row = self.header_row
        with self.open_stream() as raw:
            text = io.TextIOWrapper(raw, encoding=codec, errors="replace", newline="")
            reader = csv.reader(text, delimiter=self.delimiter, strict=True)
            try:
                for record in reader:
                    if reader.line_num <= self.header_row:
                        continue
                    if not record:  # a blank line (Arrow skips those too)
                        continue
                    row += 1
                    if len(record) != expected:
                        return InputError(
                            f"{self.source}: row {row}: expected {expected} values (one per header), "
                            f"found {len(record)}"
                        )
            except csv.Error as err:
                message = str(err)
                if "unexpected end of data" in message:
                    message = "unclosed quote (the quoted value runs to the end of the file)"
                elif "expected after" in message:
                    message = f"text after a closing quote ({message})"
                return InputError(f"{self.source}: row {row + 1}: {message}")
        if arrow_message is None:
            return None
        first_line = arrow_message.splitlines()[0] if arrow_message else "cannot parse"
        return InputError(f"{self.source}: {first_line}")


# ---- XLSX ------------------------------------------------------------------------------

def cell_text(value: Any) -> str | None:
    """An openpyxl cell value as text the converters read (dates as ISO)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds())
    return str(value)


def _trim_trailing_empty(cells: list[Any]) -> list[Any]:
    end = len(cells)
    while end and (cells[end - 1] is None or (isinstance(cells[end - 1], str) and not cells[end - 1].strip())):
        end -= 1
    return cells[:end]


def sheet_table(source: str, worksheet) -> RawTable:
    """A worksheet (openpyxl, read-only) as a :class:`RawTable`; rows are read lazily."""
    rows = worksheet.iter_rows(values_only=True)
    head: list[tuple[int, list[Any]]] = []
    number = 0
    for values in rows:
        number += 1
        cells = _trim_trailing_empty(list(values))
        if cells:
            head.append((number, cells))
            if len(head) >= HEADER_SEARCH_ROWS:
                break
    if not head:
        raise EmptyFile(f"{source}: empty sheet")
    header_at = next(
        (i for i, (_, cells) in enumerate(head)
         if looks_like_header([normalise_header(cell_text(c) or "") for c in cells])),
        0,
    )
    header_row, header_cells = head[header_at]
    headers = [cell_text(c) or "" for c in header_cells]
    pending = head[header_at + 1:]

    def all_rows() -> Iterator[tuple[int, list[Any]]]:
        yield from pending
        n = number
        for values in rows:
            n += 1
            yield n, list(values)

    return RawTable(source=source, headers=headers, header_row=header_row,
                    batches=_sheet_batches(source, headers, all_rows()), excel=True)


def _sheet_batches(source: str, headers: list[str], rows: Iterator[tuple[int, list[Any]]]) -> Iterator[RawBatch]:
    width = len(headers)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    numbers: list[int] = []
    for number, cells in rows:
        cells = _trim_trailing_empty(cells)
        if not cells:
            continue  # a blank row
        if len(cells) > width:
            raise InputError(
                f"{source}: row {number}: a value in column {len(cells)} has no header "
                f"(the header row has {width} columns)"
            )
        for i in range(width):
            columns[i].append(cell_text(cells[i]) if i < len(cells) else None)
        numbers.append(number)
        if len(numbers) >= XLSX_BATCH_ROWS:
            yield RawBatch([pa.array(c, pa.string()) for c in columns], numbers[0], numbers)
            columns = [[] for _ in range(width)]
            numbers = []
    if numbers:
        yield RawBatch([pa.array(c, pa.string()) for c in columns], numbers[0], numbers)
