"""What a file is, decided from its bytes (never from its extension).

- container format: ZIP (``PK\\x03\\x04``; an XLSX is a ZIP holding ``xl/``), gzip
  (``\\x1f\\x8b``), or text (CSV);
- text encoding: UTF-8 (BOM or not), UTF-16 LE/BE with BOM, UTF-16 without BOM (NUL bytes
  in every other position), else Windows-1252 when the start of the file is clearly not
  UTF-8;
- the CSV delimiter: the most frequent of ``,`` ``;`` tab in the header line, outside quotes.

The encoding is decided from the first :data:`SAMPLE_SIZE` bytes. A file that starts as
valid UTF-8 is read as UTF-8 to the end: an invalid byte further on is an error naming the
row and column (no silent replacement characters in the data).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

SAMPLE_SIZE = 64 * 1024

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
# Formats that are certainly not a CSV: a clearer message than "cannot tell the kind".
_OTHER_BINARY = {
    b"%PDF": "PDF document",
    b"\xd0\xcf\x11\xe0": "legacy Excel .xls / OLE file (save it as .xlsx or .csv)",
    b"PAR1": "Parquet file",
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
    b"7z\xbc\xaf": "7-Zip archive",
    b"Rar!": "RAR archive",
    b"BZh": "bzip2 archive",
    b"\xfd7zXZ": "xz archive",
}


def container_format(head: bytes) -> str:
    """``zip`` | ``gzip`` | ``empty`` | ``text`` | a description of a binary format we refuse."""
    if not head:
        return "empty"
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    for magic, description in _OTHER_BINARY.items():
        if head.startswith(magic):
            return description
    return "text"


@dataclass(frozen=True)
class Encoding:
    codec: str  # Python codec name
    bom: int  # bytes of byte-order mark to skip

    @property
    def is_utf8(self) -> bool:
        return self.codec == "utf-8"


def detect_encoding(sample: bytes) -> Encoding:
    if sample.startswith(codecs.BOM_UTF8):
        return Encoding("utf-8", 3)
    if sample.startswith(codecs.BOM_UTF16_LE):
        return Encoding("utf-16-le", 2)
    if sample.startswith(codecs.BOM_UTF16_BE):
        return Encoding("utf-16-be", 2)
    utf16 = _utf16_without_bom(sample)
    if utf16:
        return Encoding(utf16, 0)
    if _is_utf8(sample):
        return Encoding("utf-8", 0)
    return Encoding("cp1252", 0)


def _utf16_without_bom(sample: bytes) -> str | None:
    """Mostly-ASCII text in UTF-16 has a NUL in every other byte."""
    pairs = sample[: 4096 - 4096 % 2]
    if len(pairs) < 4:
        return None
    even_nuls = pairs[0::2].count(0)
    odd_nuls = pairs[1::2].count(0)
    half = len(pairs) // 2
    if odd_nuls > 0.6 * half and even_nuls < 0.1 * half:
        return "utf-16-le"
    if even_nuls > 0.6 * half and odd_nuls < 0.1 * half:
        return "utf-16-be"
    return None


def _is_utf8(sample: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(sample, final=False)  # a character cut at the sample's end is fine
    except UnicodeDecodeError:
        return False
    return True


def utf8_error_offset(data: bytes) -> int | None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start
    return None


def sniff_delimiter(line: str) -> str:
    """The delimiter of a header line: the most frequent of , ; tab outside double quotes."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def looks_binary(text: str) -> bool:
    """Control characters other than tab/CR/LF in decoded text: not a CSV."""
    sample = text[:4096]
    if not sample:
        return False
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n\f")
    return controls > max(2, len(sample) // 100)
