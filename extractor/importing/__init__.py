"""Import of usage files that admins download by hand (and of export files the extractor
downloads): CSV / XLSX / ZIP / gzip, both Autodesk naming schemes, any common encoding.

Public API::

    read_table(path, kind=None, *, name=None) -> ImportedFile     # one table, in memory
    read_tables(path, kind=None, *, name=None) -> list[ImportedFile]
    iter_files(paths) -> iterator of (display_name, opener)     # folders, ZIPs, XLSX sheets
    import_paths(settings, paths, kind=None, hash_personal_data=False) -> ImportReport
    normalise_header(text) -> str

Modules: ``sniff`` (format/encoding/delimiter from bytes), ``sources`` (folders, archives,
workbooks), ``readers`` (CSV/XLSX -> text batches), ``headers`` (names and aliases),
``kinds`` (kind detection, target dataset), ``values`` (text -> typed columns),
``convert`` (a table of one kind -> typed, checked batches), ``importer`` (the transaction).
"""

from .convert import PERSONAL_COLUMNS
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
    "PERSONAL_COLUMNS",
    "detect_kind",
    "import_paths",
    "iter_files",
    "normalise_header",
    "read_table",
    "read_tables",
]
