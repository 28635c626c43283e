"""The semantic model as TMDL (Tabular Model Definition Language) files.

Layout (what Power BI Desktop writes for a PBIP with the TMDL format)::

    definition/database.tmdl        compatibility level
    definition/model.tmdl           culture, table order
    definition/expressions.tmdl     parameter MartsFolder + function MartFile (the one place to repoint)
    definition/relationships.tmdl   many-to-one, single direction, mart -> dimension
    definition/cultures/en-US.tmdl
    definition/tables/<table>.tmdl  columns (typed from Parquet), measures, one Power Query partition

Descriptions are ``///`` lines above an object. A multi-line expression is indented two
levels below the property that holds it. Lineage tags are UUIDs derived from the names, so
two publishes write the same bytes.
"""

from __future__ import annotations

import uuid
from pathlib import PureWindowsPath

from ..semantic import BIModel, Column, Measure, Table

CULTURE = "en-US"
COMPATIBILITY_LEVEL = 1567
PARAMETER = "MartsFolder"
FILE_FUNCTION = "MartFile"
#: TMDL dataType per column kind; Parquet.Document gives the matching Power Query types
DATA_TYPES = {"string": "string", "int64": "int64", "double": "double", "boolean": "boolean",
              "date": "dateTime", "datetime": "dateTime"}
FORMATS = {"int64": "0", "double": "#,0.00", "date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:nn:ss"}
_NAMESPACE = uuid.UUID("6f1c2d4e-8b7a-4f3e-9c2d-1a0b5e7d9f21")


def lineage_tag(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def name(text: str) -> str:
    """A TMDL object name: quoted with ' when it is not a plain identifier."""
    if text.replace("_", "a").isalnum() and not text[0].isdigit():
        return text
    return "'" + text.replace("'", "''") + "'"


def ref(table: str, column: str) -> str:
    return f"{name(table)}.{name(column)}"


def m_text(value: str) -> str:
    """An M text literal (M escapes only the double quote)."""
    return '"' + value.replace('"', '""') + '"'


def _description(text: str, indent: str) -> list[str]:
    return [f"{indent}/// {line}".rstrip() for line in text.splitlines() if line.strip()] if text else []


def _expression(lines: list[str], indent: str) -> list[str]:
    return [f"{indent}{line}" if line else "" for line in lines]


def mart_file_function(default_separator: str) -> list[str]:
    """``MartFile(name)``: the binary of ``<MartsFolder>/<name>.parquet``. Swap its body to read
    the same files from SharePoint or ADLS (docs/bi.md shows both)."""
    sep = m_text(default_separator)
    return [
        "(mart as text) as binary =>",
        "let",
        f'    Separator = if Text.Contains({PARAMETER}, "/") and not Text.Contains({PARAMETER}, "\\") then "/" else {sep},',
        f"    Folder = if Text.EndsWith({PARAMETER}, Separator) then {PARAMETER} else {PARAMETER} & Separator,",
        '    Contents = File.Contents(Folder & mart & ".parquet")',
        "in",
        "    Contents",
    ]


def partition_source(table: Table, model: BIModel) -> tuple[str, list[str]]:
    """(kind, expression lines) of a table's one partition."""
    if table.generated_from == "Date":
        return "calculated", ["CALENDARAUTO()"]
    if table.generated_from:
        key = table.generated_from
        sources = [r.from_table for r in model.relationships if r.to_table == table.name]
        parts = [f"Table.SelectColumns({m_identifier(s)}, {{{m_text(key)}}})" for s in sources]
        return "m", [
            "let",
            f"    Values = Table.Combine({{{', '.join(parts)}}}),",
            f"    NotNull = Table.SelectRows(Values, each [{key}] <> null),",
            "    Distinct = Table.Distinct(NotNull)",
            "in",
            "    Distinct",
        ]
    return "m", [
        "let",
        f"    Source = Parquet.Document({FILE_FUNCTION}({m_text(table.name)}))",
        "in",
        "    Source",
    ]


def m_identifier(query: str) -> str:
    return query if query.replace("_", "a").isalnum() and not query[0].isdigit() else f"#{m_text(query)}"


def _column(table: Table, column: Column, calculated: bool) -> list[str]:
    lines = _description(column.description, "\t")
    lines.append(f"\tcolumn {name(column.name)}")
    lines.append(f"\t\tdataType: {DATA_TYPES[column.kind]}")
    if column.kind in FORMATS:
        lines.append(f"\t\tformatString: {FORMATS[column.kind]}")
    if table.generated_from == "Date":
        lines.append("\t\tisKey")  # with the table's dataCategory Time: marked as the date table
    if calculated:
        lines.append("\t\tisNameInferred")
        lines.append(f"\t\tsourceColumn: [{column.name}]")
    else:
        lines.append(f"\t\tsourceColumn: {column.name}")
    lines.append(f"\t\tlineageTag: {lineage_tag(table.name, column.name)}")
    lines.append("\t\tsummarizeBy: none")
    lines.append("")
    return lines


def _measure(measure: Measure) -> list[str]:
    lines = _description(measure.description, "\t")
    lines.append(f"\tmeasure {name(measure.name)} = {measure.expression()}")
    lines.append(f"\t\tformatString: {measure.format}")
    lines.append(f"\t\tlineageTag: {lineage_tag(measure.table, 'measure', measure.name)}")
    lines.append("")
    return lines


def table_tmdl(table: Table, model: BIModel) -> str:
    kind, source = partition_source(table, model)
    lines = _description(table.description, "")
    lines.append(f"table {name(table.name)}")
    lines.append(f"\tlineageTag: {lineage_tag(table.name)}")
    if table.generated_from == "Date":
        lines.append("\tdataCategory: Time")
    lines.append("")
    for measure in table.measures:
        lines += _measure(measure)
    for column in table.columns:
        lines += _column(table, column, calculated=kind == "calculated")
    lines.append(f"\tpartition {name(table.name)} = {kind}")
    lines.append("\t\tmode: import")
    lines.append("\t\tsource =")
    lines += _expression(source, "\t\t\t\t")
    lines.append("")
    return "\n".join(lines)


def relationships_tmdl(model: BIModel) -> str:
    lines = []
    for r in model.relationships:
        lines.append(f"relationship {lineage_tag('relationship', r.from_table, r.from_column, r.to_table)}")
        lines.append(f"\tfromColumn: {ref(r.from_table, r.from_column)}")
        lines.append(f"\ttoColumn: {ref(r.to_table, r.to_column)}")
        lines.append("")
    return "\n".join(lines)


def default_separator(folder: str) -> str:
    return "\\" if PureWindowsPath(folder).drive or "\\" in folder else "/"


def expressions_tmdl(marts_folder: str) -> str:
    lines = [
        "/// The folder holding <mart>.parquet (publish writes them to <data-dir>/marts). Change it in",
        "/// Transform data > Edit parameters to read another copy of the folder.",
        f"expression {PARAMETER} = {m_text(marts_folder)} meta [IsParameterQuery=true, Type=\"Text\", "
        "IsParameterQueryRequired=true]",
        f"\tlineageTag: {lineage_tag('expression', PARAMETER)}",
        "",
        "\tannotation PBI_ResultType = Text",
        "",
        "/// The Parquet file of one mart, read from MartsFolder. Replace its body to read the files",
        "/// from SharePoint or ADLS (see docs/bi.md).",
        f"expression {FILE_FUNCTION} =",
    ]
    lines += _expression(mart_file_function(default_separator(marts_folder)), "\t\t")
    lines += [f"\tlineageTag: {lineage_tag('expression', FILE_FUNCTION)}", "",
              "\tannotation PBI_ResultType = Function", ""]
    return "\n".join(lines)


def model_tmdl(model: BIModel) -> str:
    lines = [
        "model Model",
        f"\tculture: {CULTURE}",
        "\tdefaultPowerBIDataSourceVersion: powerBI_V3",
        "\tdiscourageImplicitMeasures",
        f"\tsourceQueryCulture: {CULTURE}",
        "\tdataAccessOptions",
        "\t\tlegacyRedirects",
        "\t\treturnErrorValuesAsNull",
        "",
    ]
    lines += [f"ref table {name(t.name)}" for t in model.tables]
    lines += ["", f"ref cultureInfo {CULTURE}", ""]
    return "\n".join(lines)


def semantic_model_files(model: BIModel, marts_folder: str) -> dict[str, str]:
    """Relative path (under ``definition/``) -> text of every TMDL file."""
    files = {
        "database.tmdl": f"database\n\tcompatibilityLevel: {COMPATIBILITY_LEVEL}\n",
        "model.tmdl": model_tmdl(model),
        "expressions.tmdl": expressions_tmdl(marts_folder),
        "relationships.tmdl": relationships_tmdl(model),
        f"cultures/{CULTURE}.tmdl": f"cultureInfo {CULTURE}\n",
    }
    for table in model.tables:
        files[f"tables/{table.name}.tmdl"] = table_tmdl(table, model)
    return files
