"""A :class:`~.readers.RawTable` of one known kind -> typed Arrow record batches with the
canonical column names of its dataset, checked row by row.

Checks (each failure names file, row and column):
- every listed column is read as its type (``values.py``); unknown columns stay text;
- the dataset's date column (``usage_date``) is filled on every row: it partitions the data;
- tokens are never negative, except Token Flex ``MANUAL_ADJUSTMENT`` rows, where a negative
  ``tokens_consumed`` is a credit given back to the pool;
- with a personal-data salt (``--hash-personal-data``), the personal columns
  (``extractor.personal.PERSONAL_COLUMNS``) are replaced by the salted SHA-256 of their
  trimmed, lower-cased value, exactly as the API extraction does with the data dir's salt,
  so imported and extracted rows of one person still join (and an e-mail hashes the same as
  a Token Flex user name that is that address).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from ..personal import hash_personal_columns
from ..schemas import plain_text
from .headers import column_names, normalise_header
from .kinds import Kind, detect_kind, kind_by_name
from .readers import RawBatch, RawTable
from .values import BadValue, to_type

ADJUSTMENT_CATEGORY = "MANUAL_ADJUSTMENT"


class NotThisKind(InputError):
    """The table is not (or not recognisably) the kind asked for: a workbook's notes sheet."""


def _list(headers: list[str], limit: int = 15) -> str:
    shown = ", ".join(repr(h) for h in headers[:limit])
    return shown + (f", ... ({len(headers)} in all)" if len(headers) > limit else "")


@dataclass
class Prepared:
    raw: RawTable
    kind: Kind
    names: list[str]  # canonical column names, in file order
    salt: bytes | None = None  # hash personal columns with it

    @property
    def source(self) -> str:
        return self.raw.source

    @property
    def dataset(self) -> str:
        return self.kind.dataset

    def batches(self) -> Iterator[tuple[pa.RecordBatch, RawBatch]]:
        """Typed batches, each with the raw batch it came from (row numbers, progress)."""
        for raw in self.raw.batches:
            yield self.convert(raw), raw

    def record_batches(self, on_batch=None) -> Iterator[pa.RecordBatch]:
        for batch, raw in self.batches():
            if on_batch is not None:
                on_batch(raw)
            yield batch

    def schema(self) -> pa.Schema:
        columns = self.kind.spec.columns
        return pa.schema([pa.field(n, columns.get(n, pa.string())) for n in self.names])

    def convert(self, raw: RawBatch) -> pa.RecordBatch:
        spec = self.kind.spec
        arrays = []
        for i, name in enumerate(self.names):
            target = spec.columns.get(name, pa.string())
            try:
                array = to_type(raw.columns[i], target, excel=self.raw.excel, decimal_comma=self.raw.decimal_comma)
            except BadValue as bad:
                raise self._error(raw, bad.index, i, str(bad)) from None
            arrays.append(array)
        # text columns as they came: dictionary-encoded from a CSV, plain from a workbook
        batch = pa.RecordBatch.from_arrays(arrays, names=self.names)
        self._check(batch, raw)
        if self.salt is not None:
            batch = hash_personal_columns(batch, self.salt)
        return batch

    def _error(self, raw: RawBatch, index: int, column: int, what: str) -> InputError:
        return InputError(f"{self.source}: row {raw.row(index)}, column '{self.raw.headers[column]}': {what}")

    def _check(self, batch: pa.RecordBatch, raw: RawBatch) -> None:
        spec = self.kind.spec
        if spec.date_column and spec.date_column in self.names:
            column = batch.column(spec.date_column)
            if column.null_count:
                index = pc.index(pc.is_null(column), True).as_py()
                raise self._error(raw, index, self.names.index(spec.date_column),
                                  "empty; every row needs a date")
        token_column = "tokens_consumed" if self.kind.name == "tokenflex" else "tokens"
        if token_column in self.names and pa.types.is_floating(batch.column(token_column).type):
            negative = pc.fill_null(pc.less(batch.column(token_column), 0), False)
            if self.kind.name == "tokenflex" and "usage_category" in self.names:
                category = pc.utf8_upper(pc.fill_null(plain_text(batch.column("usage_category")), ""))
                negative = pc.and_(negative, pc.not_equal(category, ADJUSTMENT_CATEGORY))
            if pc.any(negative).as_py():
                index = pc.index(negative, True).as_py()
                value = batch.column(token_column)[index].as_py()
                allowed = " (allowed only in MANUAL_ADJUSTMENT rows)" if self.kind.name == "tokenflex" else ""
                raise self._error(raw, index, self.names.index(token_column),
                                  f"negative tokens ({value:g}){allowed}")

    def read_all(self) -> tuple[pa.Table, list[int]]:
        """The whole table and each row's row number (for small files: metadata, read_table),
        text as plain ``string``."""
        batches, rows = [], []
        for batch, raw in self.batches():
            batches.append(pa.RecordBatch.from_arrays([plain_text(c) for c in batch.columns], schema=self.schema()))
            rows.extend(raw.row(i) for i in range(raw.num_rows))
        return pa.Table.from_batches(batches, schema=self.schema()), rows


def prepare(raw: RawTable, kind: str | None = None, *, salt: bytes | None = None) -> Prepared:
    """Decide the kind (given, or from the headers) and the canonical names of ``raw``.

    Raises :class:`NotThisKind` when the headers do not fit (the caller decides whether that
    skips a sheet or fails the import) and :class:`InputError` for broken headers.
    """
    plain = [normalise_header(h or "") for h in raw.headers]
    if kind:
        chosen = kind_by_name(kind)
    else:
        try:
            chosen = detect_kind(plain, raw.headers, raw.source)
        except InputError as err:
            raise NotThisKind(str(err)) from None
    names = column_names(raw.headers, raw.source, aliases=chosen.aliases)
    missing = chosen.required_missing(set(names))
    if missing:
        raise NotThisKind(
            f"{raw.source}: required column {', '.join(repr(m) for m in missing)} missing for a "
            f"{chosen.name} file (headers: {_list(raw.headers)})"
        )
    return Prepared(raw, chosen, names, salt)
