"""Text -> typed values, and what the bytes of a file say about it."""

from __future__ import annotations

import codecs
import datetime as dt

import pyarrow as pa
import pytest

from extractor.importing import sniff
from extractor.importing.values import BadValue, to_date, to_float, to_int, to_timestamp, to_type
from extractor.schemas import TEXT as DICTIONARY_TEXT

D = dt.date(2026, 1, 5)


@pytest.mark.parametrize("text", [
    "2026-01-05", " 2026-01-05 ", "1/5/2026", "01/05/2026", "1/5/26", "05.01.2026", "2026/01/05",
    "05-Jan-2026", "2026-01-05T10:20:30Z", "2026-01-05 10:20:30", "1/5/2026 10:20 AM",
])
def test_dates_in_common_formats(text):
    assert to_date(pa.array([text, "2026-01-05"])).to_pylist() == [D, D]


def test_excel_serial_dates_only_from_spreadsheets():
    assert to_date(pa.array(["46027"]), excel=True).to_pylist() == [D]
    with pytest.raises(BadValue):
        to_date(pa.array(["46027"]))


def test_blank_and_masked_cells_are_null():
    assert to_date(pa.array(["", "  ", "*****", None])).to_pylist() == [None] * 4


@pytest.mark.parametrize("values, index", [(["2026-01-05", "2026-13-01"], 1), (["31/12/2026"], 0),
                                           (["1/5/0026"], 0), (["soon"], 0)])
def test_bad_dates_name_the_first_bad_cell(values, index):
    with pytest.raises(BadValue) as err:
        to_date(pa.array(values))
    assert err.value.index == index and err.value.text == values[index]


# a CSV's cells come dictionary-encoded: typed a distinct value at a time, the same result
@pytest.mark.parametrize("values, target", [
    (["2026-01-05", "1/5/2026", "2026-01-05", "", None, "05.01.2026"], pa.date32()),
    (["1,234.5", "12", "12", " ", "*****", None], pa.float64()),
    (["3", "3.0", None, "7"], pa.int64()),
    (["2026-01-05T10:20:30Z", "2026-01-05 10:20:30", "2026-01-05T10:20:30Z"], pa.timestamp("us", "UTC")),
    ([" Revit ", "Revit", "", "*****", None, "AutoCAD", "Revit"], pa.string()),
])
def test_dictionary_encoded_text_is_typed_like_plain_text(values, target):
    plain = to_type(pa.array(values, pa.string()), target)
    typed = to_type(pa.array(values, pa.string()).dictionary_encode(), target)
    assert typed.to_pylist() == plain.to_pylist()
    assert typed.null_count == plain.null_count  # blank cells NULL as indices, not as values
    if target == pa.string():  # text stays encoded, each cleaned value once in its dictionary
        assert typed.type == DICTIONARY_TEXT and typed.dictionary.to_pylist() == ["Revit", "AutoCAD"]
    else:
        assert typed.type == plain.type


def test_a_bad_value_in_dictionary_encoded_text_names_its_first_row():
    values = pa.array(["2026-01-05", "soon", "2026-01-05", "later", "soon"]).dictionary_encode()
    sliced = values.slice(2)  # a slice keeps the whole dictionary: "soon" is its entry 1 either way
    with pytest.raises(BadValue) as err:
        to_date(values)
    assert (err.value.index, err.value.text) == (1, "soon")
    with pytest.raises(BadValue) as err:
        to_type(sliced, pa.date32())
    assert (err.value.index, err.value.text) == (1, "later")  # not "soon", the dictionary's first bad value
    assert to_type(values.slice(0, 1), pa.date32()).to_pylist() == [D]  # bad values outside the slice


def test_numbers_with_thousands_separators():
    assert to_float(pa.array(["1,234.5", "1.234,5", "1 234", "1'234", "12", "-3", ".5"])).to_pylist() == \
        [1234.5, 1234.5, 1234, 1234, 12, -3, 0.5]
    assert to_float(pa.array(["12,5", "1.234.567"]), decimal_comma=True).to_pylist() == [12.5, 1234567]
    assert to_int(pa.array(["3.0", "1,000", None])).to_pylist() == [3, 1000, None]


@pytest.mark.parametrize("values, index", [(["1", "abc"], 1), (["nan"], 0), (["1.2.3"], 0)])
def test_bad_numbers(values, index):
    with pytest.raises(BadValue) as err:
        to_float(pa.array(values))
    assert err.value.index == index


def test_integers_must_be_whole():
    with pytest.raises(BadValue, match="whole number"):
        to_int(pa.array(["2", "2.5"]))


def test_timestamps_are_utc():
    ts = pa.timestamp("us", tz="UTC")
    got = to_timestamp(pa.array(["2018-03-01T16:24:53", "2018-03-01 16:24:53"]), ts).to_pylist()
    assert [v.isoformat() for v in got] == ["2018-03-01T16:24:53+00:00"] * 2
    got = to_timestamp(pa.array(["2018-03-01T18:24:53+02:00"]), ts).to_pylist()
    assert got[0].isoformat() == "2018-03-01T16:24:53+00:00"
    got = to_timestamp(pa.array(["3/1/2018 4:24 PM", "2018-03-01T16:24:53Z"]), ts).to_pylist()
    assert [v.isoformat() for v in got] == ["2018-03-01T16:24:00+00:00", "2018-03-01T16:24:53+00:00"]


TEXT = "email;geo\nrené@x.example;EMEA\n"


@pytest.mark.parametrize("data, codec", [
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16-le"),
    (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16-be"),
    (TEXT.encode("utf-16-le"), "utf-16-le"),
    (TEXT.encode("utf-16-be"), "utf-16-be"),
    (TEXT.encode("cp1252"), "cp1252"),
])
def test_encoding_from_bytes(data, codec):
    enc = sniff.detect_encoding(data)
    assert enc.codec == codec
    assert data[enc.bom:].decode(codec) == TEXT


@pytest.mark.parametrize("line, delimiter", [("a,b,c", ","), ("a;b;c", ";"), ("a\tb\tc", "\t"),
                                             ('"x;y",b,c', ","), ("single", ",")])
def test_delimiter(line, delimiter):
    assert sniff.sniff_delimiter(line) == delimiter


@pytest.mark.parametrize("head, kind", [(b"PK\x03\x04rest", "zip"), (b"\x1f\x8b\x08", "gzip"), (b"", "empty"),
                                        (b"a,b\n", "text"), (b"%PDF-1.7", "PDF document")])
def test_container_format_from_magic_bytes(head, kind):
    assert sniff.container_format(head) == kind
