"""Text cells -> typed Arrow arrays, a whole column at a time, with the first bad cell named.

Every function takes a string array (one column of one batch) and returns the typed array,
or raises :class:`BadValue` with the index of the first cell it could not read, so the
caller can name the file, row and column.

What is accepted (the same in CSV and XLSX):
- blank cells, and cells that are only asterisks (``*****``: personal data hidden by the
  admin), are NULL;
- dates: ISO ``2026-01-05``, ``MM/DD/YYYY`` and ``MM/DD/YY`` (US, as Autodesk exports them),
  ``DD.MM.YYYY``, ``YYYY/MM/DD``, ``05-Jan-2026``, each optionally followed by a time
  (``2026-01-05T10:20:30Z``, ``1/5/2026 10:20 AM``; the time is dropped), and in XLSX also
  Excel serial day numbers. A year outside 1900-2199 is an error (a two-digit-year typo);
- timestamps: ISO with or without offset (no offset = UTC), and the date formats above with
  ``HH:MM[:SS]`` and optional AM/PM;
- numbers: ``1234.5``, ``1,234.5``, ``1.234,5``, ``1 234``, ``1'234``; in a ``;``-separated
  file ``12,5`` is twelve and a half (the decimal comma of the locales that use ``;``),
  elsewhere ``1,234`` is one thousand two hundred and thirty-four. Integers must be whole.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


class BadValue(ValueError):
    def __init__(self, index: int, text: str, expected: str):
        super().__init__(f"{text!r} is not {expected}")
        self.index = index
        self.text = text
        self.expected = expected


_MASKED = r"^\*{3,}$"
DATE_FORMATS = ("%m/%d/%y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%b-%Y", "%d-%b-%y", "%Y-%m-%d")
TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
_EXCEL_EPOCH_DAYS = -25569  # 1899-12-30 (Excel's day 0, after its 1900 leap-year bug) from 1970-01-01
_MIN_YEAR, _MAX_YEAR = 1900, 2199


def clean(values: pa.Array) -> pa.Array:
    """Trimmed text; blank or masked cells NULL."""
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    trimmed = pc.utf8_trim_whitespace(values)
    empty = pc.equal(pc.binary_length(trimmed), 0)
    starred = pc.starts_with(trimmed, "***")  # cheap; the regex runs only when some cell may be masked
    if pc.any(starred).as_py():
        empty = pc.or_(empty, pc.fill_null(pc.match_substring_regex(trimmed, _MASKED), False))
    if not pc.any(empty).as_py():
        return trimmed
    return pc.if_else(empty, pa.scalar(None, pa.string()), trimmed)


def _first_bad(text: pa.Array, parsed: pa.Array) -> int | None:
    bad = pc.and_(pc.is_valid(text), pc.is_null(parsed))
    if not pc.any(bad).as_py():
        return None
    return pc.index(bad, True).as_py()


def _raise_first_bad(text: pa.Array, parsed: pa.Array, expected: str) -> None:
    index = _first_bad(text, parsed)
    if index is not None:
        raise BadValue(index, text[index].as_py(), expected)


def _unpadded(text: pa.Array) -> pa.Array:
    """Lower case, "05" -> "5" in two-digit groups (twice: adjacent groups share a separator)."""
    text = pc.utf8_lower(text)
    for _ in range(2):
        text = pc.replace_substring_regex(text, r"(^|[^0-9])0([0-9])([^0-9]|$)", r"\1\2\3")
    return text


def _strptime_strict(text: pa.Array, fmt: str) -> pa.Array:
    """strptime, but a date that does not exist is NULL: strptime rolls 2026-02-30 over to
    2026-03-02, so a parsed value must format back to its text (zero padding and case aside)."""
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    if parsed.null_count == len(parsed):
        return parsed
    same = pc.fill_null(pc.equal(_unpadded(pc.strftime(parsed, format=fmt)), _unpadded(text)), False)
    return pc.if_else(same, parsed, pa.scalar(None, parsed.type))


def _coalesce_formats(text: pa.Array, formats: tuple[str, ...]) -> pa.Array:
    parsed = [_strptime_strict(text, f) for f in formats]
    return pc.coalesce(*parsed) if len(parsed) > 1 else parsed[0]


def _check_years(text: pa.Array, days: pa.Array) -> None:
    years = pc.year(days)
    out_of_range = pc.or_(pc.less(years, _MIN_YEAR), pc.greater(years, _MAX_YEAR))
    out_of_range = pc.fill_null(out_of_range, False)
    if pc.any(out_of_range).as_py():
        index = pc.index(out_of_range, True).as_py()
        raise BadValue(index, text[index].as_py(), f"a date between {_MIN_YEAR} and {_MAX_YEAR}")


def _excel_serials(text: pa.Array) -> pa.Array:
    """Cells holding a bare day number (XLSX without a date format) -> date32."""
    is_serial = pc.fill_null(pc.match_substring_regex(text, r"^\d{1,6}(\.\d+)?$"), False)
    numbers = pc.cast(pc.if_else(is_serial, text, pa.scalar(None, pa.string())), pa.float64())
    days = pc.add(pc.cast(pc.floor(numbers), pa.int64()), _EXCEL_EPOCH_DAYS)
    return pc.cast(pc.cast(days, pa.int32()), pa.date32())


def to_date(values: pa.Array, *, excel: bool = False) -> pa.Array:
    text = clean(values)
    try:  # the common case: every cell ISO
        result = text.cast(pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        date_part = pc.replace_substring_regex(text, r"(\s|T\d).*$", "")
        result = pc.cast(_coalesce_formats(date_part, DATE_FORMATS), pa.date32())
        if excel:
            result = pc.coalesce(result, _excel_serials(text))
        _raise_first_bad(text, result, "a date (YYYY-MM-DD, MM/DD/YYYY, DD.MM.YYYY, YYYY/MM/DD)")
    _check_years(text, result)
    return result


def to_timestamp(values: pa.Array, target: pa.DataType, *, excel: bool = False) -> pa.Array:
    """Text -> timestamp in UTC (``target`` is ``timestamp(us, UTC)``); no offset means UTC."""
    text = clean(values)
    naive_type = pa.timestamp(target.unit)
    try:
        result = pc.assume_timezone(text.cast(naive_type), "UTC").cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:
            result = text.cast(target)  # every cell with an offset
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            result = _timestamp_any_format(text, naive_type, target, excel)
    _check_years(text, pc.cast(result, pa.date32()))
    return result


def _timestamp_any_format(text: pa.Array, naive_type: pa.DataType, target: pa.DataType, excel: bool) -> pa.Array:
    bare = pc.replace_substring_regex(text, r"(\.\d+)?Z$", "")
    bare = pc.replace_substring_regex(bare, r"\.\d+$", "")
    formats = tuple(f"{d}{sep}{t}" for d in DATE_FORMATS for sep in (" ", "T") for t in TIME_FORMATS
                    if not (sep == "T" and "%p" in t)) + DATE_FORMATS
    parsed = pc.cast(_coalesce_formats(bare, formats), naive_type)
    if excel:
        serial = pc.cast(pc.cast(_excel_serials(text), pa.timestamp("s")), naive_type)
        parsed = pc.coalesce(parsed, serial)
    _raise_first_bad(text, parsed, "a date-time (YYYY-MM-DDTHH:MM:SS)")
    return pc.assume_timezone(parsed, "UTC").cast(target)


_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_DECIMAL_COMMA = r"^[+-]?\d+,\d+$"
_COMMA_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"
_DOT_THOUSANDS = r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$"
_SPACE_THOUSANDS = "^[+-]?\\d{1,3}([ '\u00a0\u202f]\\d{3})+([.,]\\d+)?$"


def _normalise_numbers(text: pa.Array, decimal_comma: bool) -> pa.Array:
    """Number text in any of the accepted notations -> plain ``1234.5`` text (else NULL)."""

    def where(pattern: str) -> pa.Array:
        return pc.fill_null(pc.match_substring_regex(text, pattern), False)

    null = pa.scalar(None, pa.string())
    out = pc.if_else(where(_PLAIN_NUMBER), text, null)
    if decimal_comma:
        out = pc.coalesce(out, pc.if_else(where(_DECIMAL_COMMA), pc.replace_substring(text, ",", "."), null))
    out = pc.coalesce(out, pc.if_else(where(_COMMA_THOUSANDS), pc.replace_substring(text, ",", ""), null))
    dot = pc.replace_substring(pc.replace_substring(text, ".", ""), ",", ".")
    out = pc.coalesce(out, pc.if_else(where(_DOT_THOUSANDS), dot, null))
    spaced = pc.replace_substring_regex(text, "[ '\u00a0\u202f]", "")
    spaced = pc.replace_substring(spaced, ",", ".")
    out = pc.coalesce(out, pc.if_else(where(_SPACE_THOUSANDS), spaced, null))
    return out


def to_float(values: pa.Array, *, decimal_comma: bool = False) -> pa.Array:
    text = clean(values)
    try:  # the common case: plain numbers
        result = text.cast(pa.float64())
        if pc.any(pc.is_nan(result)).as_py() or pc.any(pc.is_inf(result)).as_py():
            raise pa.ArrowInvalid("not finite")
        return result
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    result = pc.cast(_normalise_numbers(text, decimal_comma), pa.float64())
    _raise_first_bad(text, result, "a number")
    return result


def to_int(values: pa.Array, *, decimal_comma: bool = False) -> pa.Array:
    text = clean(values)
    try:
        return text.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    numbers = to_float(values, decimal_comma=decimal_comma)  # "3.0" from a spreadsheet is 3
    whole = pc.equal(numbers, pc.floor(numbers))
    result = pc.if_else(whole, numbers, pa.scalar(None, pa.float64()))
    _raise_first_bad(text, result, "a whole number")
    return pc.cast(result, pa.int64())


_TRUE = ("true", "yes", "y", "1", "t")
_FALSE = ("false", "no", "n", "0", "f")


def to_bool(values: pa.Array) -> pa.Array:
    text = pc.utf8_lower(clean(values))
    result = pc.if_else(pc.is_in(text, pa.array(_TRUE)), True,
                        pc.if_else(pc.is_in(text, pa.array(_FALSE)), False, pa.scalar(None, pa.bool_())))
    _raise_first_bad(text, result, "true/false")
    return result


def to_type(values: pa.Array, target: pa.DataType, *, excel: bool = False, decimal_comma: bool = False) -> pa.Array:
    """One column of text as ``target`` (string columns are only cleaned). Dictionary-encoded
    text is typed a distinct value at a time: text stays dictionary-encoded, other types are
    taken out by the cells' indices."""
    if isinstance(values, pa.DictionaryArray):
        return _typed_dictionary(values, target, excel=excel, decimal_comma=decimal_comma)
    if pa.types.is_date(target):
        return to_date(values, excel=excel)
    if pa.types.is_timestamp(target):
        return to_timestamp(values, target, excel=excel)
    if pa.types.is_integer(target):
        return to_int(values, decimal_comma=decimal_comma)
    if pa.types.is_floating(target):
        return to_float(values, decimal_comma=decimal_comma)
    if pa.types.is_boolean(target):
        return to_bool(values)
    return clean(values)


def _typed_dictionary(values: pa.DictionaryArray, target: pa.DataType, *, excel: bool,
                      decimal_comma: bool) -> pa.Array:
    try:
        typed = to_type(values.dictionary, target, excel=excel, decimal_comma=decimal_comma)
    except BadValue:
        # typed cell by cell to name the first bad row: a batch's dictionary may also hold
        # values of rows outside it (Arrow's slices keep their whole dictionary)
        return to_type(values.cast(values.type.value_type), target, excel=excel, decimal_comma=decimal_comma)
    if not pa.types.is_string(typed.type):
        return typed.take(values.indices)
    # cleaning may have made two values one, or a value NULL: encoded again, NULL as no index
    encoded = pc.dictionary_encode(typed)
    return pa.DictionaryArray.from_arrays(encoded.indices.take(values.indices), encoded.dictionary)
