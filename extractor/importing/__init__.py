"""Import of usage files that admins download by hand (and of export files the extractor
downloads): CSV / XLSX / ZIP / gzip, both Autodesk naming schemes, any common encoding.

Public API::

    read_table(path, kind=None, *, name=None) -> ImportedFile     # one table, in memory
    read_tables(path, kind=None, *, name=None) -> list[ImportedFile]
    iter_files(paths) -> iterator of (display_name, opener)     # folders, ZIPs, XLSX sheets
    import_paths(settings, paths, kind=None, hash_personal_data=False) -> ImportReport
    normalise_header(text) -> str

Decisions (what happens with input that could go either way):
- The format comes from the bytes (ZIP/XLSX, gzip, text), never the file name.
- Encoding: UTF-8 (with or without BOM), UTF-16 LE/BE (BOM, or NUL bytes in every other
  position), else Windows-1252 when the first 64 KiB are not valid UTF-8. A file that
  starts as UTF-8 and has an invalid byte later is an error naming the row and column (no
  silent replacement characters).
- Delimiter: the most frequent of , ; tab in the header line. A ';' file reads ``12,5`` as
  a decimal comma. Up to 10 title lines above the header are skipped (the header is the
  first line holding a known column name).
- Row numbers are spreadsheet rows: the header line is row 1 when it is the first line.
- A header-only file imports 0 rows (a warning); an empty file is an error. For metadata,
  which is replaced whole, a header-only file therefore empties the metadata.
- Inside folders, ZIPs and workbooks, entries that are empty or of no known kind are
  skipped with a warning; a file named on the command line that is neither is an error;
  an import in which nothing is importable is an error.
- Negative tokens are an error except in Token Flex ``MANUAL_ADJUSTMENT`` rows (credits).
- Cells that are only asterisks (``*****``, personal data hidden by the admin) are NULL, so
  a masked e-mail never becomes one shared "user".
- Two headers normalising to the same text are an error; two different aliases of one
  column (``Team`` and ``Group``): the better alias gets the column, the other keeps its name.
- A stray quote inside an unquoted value (``ab"c``) is kept as text, as Arrow reads it; an
  unclosed quote is an error.

Modules: ``sniff`` (format/encoding/delimiter from bytes), ``sources`` (folders, archives,
workbooks), ``readers`` (CSV/XLSX -> text batches), ``headers`` (names and aliases),
``kinds`` (kind detection, target dataset), ``values`` (text -> typed columns),
``convert`` (a table of one kind -> typed, checked batches), ``importer`` (the transaction).
"""

from .headers import ALIASES, normalise_header
from .importer import FileResult, ImportedFile, ImportReport, import_paths, read_table, read_tables
from .kinds import KINDS, detect_kind
from .sources import InputEntry, iter_files

__all__ = [
    "ALIASES",
    "FileResult",
    "ImportReport",
    "ImportedFile",
    "InputEntry",
    "KINDS",
    "detect_kind",
    "import_paths",
    "iter_files",
    "normalise_header",
    "read_table",
    "read_tables",
]
