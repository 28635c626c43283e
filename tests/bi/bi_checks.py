"""Offline checks of the generated Power BI project and Tableau workbook.

Each check returns a list of problems (empty = fine), so a test can run it on the real
output (expects none) and on a deliberately broken copy (expects the break to be named).

- JSON files of the PBIP: validated against the Microsoft schema named in ``$schema``,
  resolved from the vendored copies in ``schemas/powerbi`` (no network).
- The .twb: validated against Tableau's workbook XSD (``schemas/tableau``), its two
  ``xs:import`` elements pointed at local stand-ins.
- What a schema cannot see: fields used by visuals / sheets exist in the model / the
  .hyper with the same type; TMDL columns equal the Parquet columns; every Power Query
  expression parses (Microsoft's parser, run by node).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import jsonschema
import referencing
from lxml import etree

SCHEMAS = Path(__file__).parent / "schemas"
SCHEMA_URL = "https://developer.microsoft.com/json-schemas/"
PQ_DIR = Path(__file__).parent / "pq"
NODE = shutil.which("node")


# ---- JSON schemas of the PBIP ---------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def schema_registry() -> referencing.Registry:
    resources = []
    for path in sorted((SCHEMAS / "powerbi").rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        uri = SCHEMA_URL + path.relative_to(SCHEMAS / "powerbi").as_posix()
        resource = referencing.Resource.from_contents(contents, default_specification=referencing.jsonschema.DRAFT7)
        resources.append((uri, resource))
    return referencing.Registry().with_resources(resources)


def validate_json_file(path: Path) -> list[str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        return [f"{path.name}: not JSON: {err}"]
    uri = document.get("$schema") if isinstance(document, dict) else None
    if not uri:
        return [f"{path}: no $schema"]
    registry = schema_registry()
    try:
        schema = registry.contents(uri)
    except referencing.exceptions.NoSuchResource:
        return [f"{path}: schema {uri} is not vendored in tests/bi/schemas"]
    validator = jsonschema.Draft7Validator(schema, registry=registry)
    return [f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def pbip_json_files(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.suffix in (".json", ".pbip", ".pbir", ".pbism"))


def validate_pbip_json(project: Path) -> list[str]:
    problems = []
    for path in pbip_json_files(project):
        problems += validate_json_file(path)
    return problems


# ---- TMDL (a small reader: what the tests compare) --------------------------------------------

def read_tmdl_tables(definition: Path) -> dict[str, dict]:
    """table name -> {"columns": {name: dataType}, "measures": set, "partition": M or DAX text}."""
    tables = {}
    for path in sorted((definition / "tables").glob("*.tmdl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        table = {"columns": {}, "measures": set(), "partition": ""}
        current = None
        in_source = False
        source: list[str] = []
        for line in lines:
            if m := re.match(r"^table (.+)$", line):
                name = _unquote(m.group(1))
                tables[name] = table
            elif m := re.match(r"^\tcolumn (.+)$", line):
                current = _unquote(m.group(1))
                table["columns"][current] = None
                in_source = False
            elif m := re.match(r"^\t\tdataType: (\w+)$", line):
                table["columns"][current] = m.group(1)
            elif m := re.match(r"^\tmeasure ('(?:[^']|'')+'|\S+) = (.*)$", line):
                table["measures"].add(_unquote(m.group(1)))
                table.setdefault("dax", {})[_unquote(m.group(1))] = m.group(2)
                current = None
            elif re.match(r"^\tpartition ", line):
                current = None
            elif line == "\t\tsource =":
                in_source = True
            elif in_source and (line.startswith("\t\t\t\t") or not line.strip()):
                source.append(line[4:])
            else:
                in_source = False
        table["partition"] = "\n".join(source).strip()
    return tables


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1].replace("''", "'") if text.startswith("'") and text.endswith("'") else text


def read_tmdl_relationships(definition: Path) -> list[tuple[str, str, str, str]]:
    text = (definition / "relationships.tmdl").read_text(encoding="utf-8")
    pairs = re.findall(r"fromColumn: (.+)\n\ttoColumn: (.+)", text)
    out = []
    for left, right in pairs:
        out.append((*_split_ref(left), *_split_ref(right)))
    return out


def _split_ref(ref: str) -> tuple[str, str]:
    m = re.match(r"^('(?:[^']|'')+'|[^.]+)\.('(?:[^']|'')+'|.+)$", ref.strip())
    return _unquote(m.group(1)), _unquote(m.group(2))


def m_expressions(definition: Path) -> dict[str, str]:
    """Every Power Query document of the model: partitions of kind m and the shared expressions."""
    docs = {}
    for name, table in read_tmdl_tables(definition).items():
        text = (definition / "tables" / f"{name}.tmdl").read_text(encoding="utf-8")
        if re.search(r"^\tpartition .+ = m$", text, re.M):
            docs[f"table {name}"] = table["partition"]
    text = (definition / "expressions.tmdl").read_text(encoding="utf-8")
    for block in re.split(r"\n(?=(?:/// .*\n)*expression )", text):
        m = re.search(r"^expression (\S+) =(.*)$", block, re.M)
        if not m:
            continue
        first = m.group(2).strip()
        body = [line[2:] for line in block[m.end():].splitlines() if line.startswith("\t\t")]
        docs[f"expression {m.group(1)}"] = first if first else "\n".join(body)
    return docs


def parse_m(documents: dict[str, str]) -> dict[str, str | None]:
    """name -> None when the M parses, else the parser's message (needs node + tests/bi/pq/node_modules)."""
    out = subprocess.run([NODE, str(PQ_DIR / "parse_m.js")], input=json.dumps(documents), capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def pq_parser_installed() -> bool:
    return bool(NODE) and (PQ_DIR / "node_modules" / "@microsoft" / "powerquery-parser").is_dir()


# ---- what the visuals use ---------------------------------------------------------------------

def visual_fields(report: Path) -> list[tuple[Path, str, str, str]]:
    """(visual file, "Column"|"Measure", table, property) of every field a visual projects."""
    out = []
    for path in sorted(report.rglob("visual.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for role in document.get("visual", {}).get("query", {}).get("queryState", {}).values():
            for projection in role.get("projections", []):
                [(kind, spec)] = projection["field"].items()
                out.append((path, kind, spec["Expression"]["SourceRef"]["Entity"], spec["Property"]))
    return out


def check_visual_fields(project: Path) -> list[str]:
    """Every field a visual projects, every column a measure's DAX names and both ends of
    every relationship exist in the TMDL model (relationship ends with the same type)."""
    definition = project / "aps-usage.SemanticModel" / "definition"
    tables = read_tmdl_tables(definition)
    problems = []
    for path, kind, table, prop in visual_fields(project / "aps-usage.Report"):
        where = f"{path.parent.name}/visual.json"
        if table not in tables:
            problems.append(f"{where}: table {table} not in the model")
        elif kind == "Column" and prop not in tables[table]["columns"]:
            problems.append(f"{where}: column {table}.{prop} not in the model")
        elif kind == "Measure" and prop not in tables[table]["measures"]:
            problems.append(f"{where}: measure {table}.{prop} not in the model")
    for table_name, table in tables.items():  # the columns each measure's DAX names
        for measure, dax in table.get("dax", {}).items():
            for ref_table, ref_col in re.findall(r"('(?:[^']|'')+'|\w+)\[([^\]]+)\]", dax):
                if ref_col not in tables.get(_unquote(ref_table), {}).get("columns", {}):
                    problems.append(f"tables/{table_name}.tmdl: measure {measure} uses {_unquote(ref_table)}[{ref_col}], "
                                    "not in the model")
    for left_table, left_col, right_table, right_col in read_tmdl_relationships(definition):
        for table, col in ((left_table, left_col), (right_table, right_col)):
            if col not in tables.get(table, {}).get("columns", {}):
                problems.append(f"relationships.tmdl: column {table}.{col} not in the model")
        left = tables.get(left_table, {}).get("columns", {}).get(left_col)
        right = tables.get(right_table, {}).get("columns", {}).get(right_col)
        if left and right and left != right:
            problems.append(f"relationships.tmdl: {left_table}.{left_col} is {left}, {right_table}.{right_col} is {right}")
    return problems


def tmdl_type_of(arrow_type) -> str:
    """The TMDL dataType Power BI gives a Parquet column (written out here, not taken from the generator)."""
    import pyarrow as pa

    for test, name in ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "int64"),
                       (pa.types.is_floating, "double"), (pa.types.is_decimal, "double"), (pa.types.is_date, "dateTime"),
                       (pa.types.is_timestamp, "dateTime"), (pa.types.is_string, "string")):
        if test(arrow_type):
            return name
    return f"unsupported {arrow_type}"


def check_tmdl_matches_parquet(project: Path, marts_dir: Path) -> list[str]:
    import pyarrow.parquet as pq

    tables = read_tmdl_tables(project / "aps-usage.SemanticModel" / "definition")
    problems = []
    for parquet in sorted(marts_dir.glob("*.parquet")):
        schema = pq.read_schema(parquet)
        expected = {f.name: tmdl_type_of(f.type) for f in schema}
        got = tables.get(parquet.stem, {}).get("columns")
        if got is None:
            problems.append(f"{parquet.name}: no table {parquet.stem} in the model")
        elif got != expected:
            problems.append(f"tables/{parquet.stem}.tmdl: columns {got} != Parquet {expected}")
    return problems


# ---- Tableau ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def twb_schema() -> etree.XMLSchema:
    folder = SCHEMAS / "tableau"
    tree = etree.parse(str(folder / "twb_2026.1.0.xsd"))
    stand_ins = {"http://www.tableausoftware.com/xml/user": "user_ns.xsd",
                 "http://www.w3.org/XML/1998/namespace": "xml_ns.xsd"}
    for element in tree.getroot().findall("{http://www.w3.org/2001/XMLSchema}import"):
        element.set("schemaLocation", (folder / stand_ins[element.get("namespace")]).as_uri())
    return etree.XMLSchema(tree)


def read_twb(twbx: Path) -> bytes:
    with zipfile.ZipFile(twbx) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".twb")]
        return archive.read(name)


def validate_twb(twb: bytes) -> list[str]:
    try:
        document = etree.fromstring(twb)
    except etree.XMLSyntaxError as err:
        return [f"not XML: {err}"]
    schema = twb_schema()
    if schema.validate(document):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def tableau_type_of(arrow_type) -> str:
    """The Tableau datatype of a column of the .hyper (as pantab reads it back)."""
    import pyarrow as pa

    for test, name in ((pa.types.is_boolean, "boolean"), (pa.types.is_integer, "integer"),
                       (pa.types.is_floating, "real"), (pa.types.is_decimal, "real"), (pa.types.is_date, "date"),
                       (pa.types.is_timestamp, "datetime"), (pa.types.is_string, "string"),
                       (pa.types.is_large_string, "string")):
        if test(arrow_type):
            return name
    return f"unsupported {arrow_type}"


def hyper_columns(hyper: Path) -> dict[str, dict[str, str]]:
    import pantab

    frames = pantab.frames_from_hyper(hyper, return_type="pyarrow")
    out = {}
    for name, table in frames.items():
        parts = [str(p).strip('"') for p in (name if isinstance(name, tuple) else str(name).split("."))]
        out[parts[-1]] = {f.name: tableau_type_of(f.type) for f in table.schema}
    return out


def check_sheet_fields(twb: bytes, hyper: Path) -> list[str]:
    """Every column a data source declares or a sheet uses is in its .hyper table with the same type."""
    root = etree.fromstring(twb)
    columns = hyper_columns(hyper)
    tables = {}
    for ds in root.findall("datasources/datasource"):
        connection = ds.find(".//connection[@class='hyper']")
        tables[ds.get("name")] = connection.get("tablename")
    problems = []
    uses = [(ds.get("name"), ds) for ds in root.findall("datasources/datasource")]
    uses += [(deps.get("datasource"), deps) for deps in root.iter("datasource-dependencies")]
    for ds_name, holder in uses:
        table = tables.get(ds_name)
        if table not in columns:
            problems.append(f"data source {ds_name}: table {table} not in {hyper.name}")
            continue
        for column in holder.findall("column"):
            if column.find("calculation") is not None:
                continue
            name = column.get("name").strip("[]")
            if name not in columns[table]:
                problems.append(f"{table}: column {name} used by the workbook is not in {hyper.name}")
            elif columns[table][name] != column.get("datatype"):
                problems.append(f"{table}.{name}: workbook says {column.get('datatype')}, "
                                f"{hyper.name} has {columns[table][name]}")
    return problems
