"""The `where` language of insights/v1 and tokenflex/v1: parse to an AST, validate, compile to SQL.

Grammar (keywords case-insensitive)::

    expr       := and_expr ( OR and_expr )*
    and_expr   := primary ( AND primary )*
    primary    := '(' expr ')'            -- one level of parentheses only
                | field op value          -- op: = != <> < > <= >=
                | field IN '(' value (',' value)* ')'
                | field LIKE 'text'       -- % and _ wildcards, >= 3 other characters
    value      := 'single quoted' | "double quoted" | number

``NOT`` is refused (use ``!=``), as Autodesk documents. Values never reach SQL text:
:func:`to_sql` emits ``?`` placeholders and a parameter list.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_WHERE_LENGTH = 4000
MAX_IN_VALUES = 1000
MIN_LIKE_CHARACTERS = 3
NO_WILDCARD_FIELDS = {"status", "source"}
OPERATORS = ("=", "!=", "<", ">", "<=", ">=")


class WhereError(ValueError):
    """A where clause the API refuses (answered with HTTP 400)."""


@dataclass(frozen=True)
class WhereField:
    """How one API field may be filtered. ``sql`` is trusted SQL (a column or expression)."""

    sql: str
    kind: str = "str"  # str | num | date
    filterable: bool = True
    personal: bool = False
    why_not: str = ""


Value = str | int | float


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str  # one of OPERATORS, "IN" or "LIKE"
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class BoolExpr:
    op: str  # AND | OR
    items: tuple[Node, ...]


Node = Comparison | BoolExpr

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<num>-?\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "IN", "LIKE", "NOT", "IS", "NULL", "BETWEEN", "EXISTS", "SELECT"}


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            snippet = text[pos:].strip()[:20]
            raise WhereError(f"where: unexpected text at position {pos}: {snippet!r}")
        kind = m.lastgroup
        value = m.group(kind)
        start = m.start(kind)
        if kind == "word" and value.upper() in _KEYWORDS:
            kind, value = "kw", value.upper()
        tokens.append((kind, value, start))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", -1)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if (kind and tok[0] != kind) or (value and tok[1] != value):
            expected = value or kind
            got = tok[1] or "end of clause"
            raise WhereError(f"where: expected {expected} but found {got!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr(0)
        if self.peek()[0] != "end":
            raise WhereError(f"where: unexpected {self.peek()[1]!r} after a complete condition")
        return node

    def expr(self, depth: int) -> Node:
        items = [self.and_expr(depth)]
        while self.peek()[:2] == ("kw", "OR"):
            self.i += 1
            items.append(self.and_expr(depth))
        return _combine("OR", items)

    def and_expr(self, depth: int) -> Node:
        items = [self.primary(depth)]
        while self.peek()[:2] == ("kw", "AND"):
            self.i += 1
            items.append(self.primary(depth))
        return _combine("AND", items)

    def primary(self, depth: int) -> Node:
        kind, value, _ = self.peek()
        if kind == "punct" and value == "(":
            if depth >= 1:
                raise WhereError("where: parentheses may be nested only one level deep")
            self.i += 1
            node = self.expr(depth + 1)
            self.take("punct", ")")
            return node
        if kind == "kw" and value == "NOT":
            raise WhereError("where: NOT is not supported; use != instead")
        if kind != "word":
            raise WhereError(f"where: expected a field name but found {value or 'end of clause'!r}")
        self.i += 1
        field = value
        kind, value, _ = self.peek()
        if kind == "kw" and value == "NOT":
            raise WhereError("where: NOT is not supported; use != instead")
        if kind == "op":
            self.i += 1
            return Comparison(field, "!=" if value == "<>" else value, self.value())
        if kind == "kw" and value == "LIKE":
            self.i += 1
            pattern = self.value()
            if not isinstance(pattern, str):
                raise WhereError(f"where: LIKE on {field} needs a quoted text pattern")
            return Comparison(field, "LIKE", pattern)
        if kind == "kw" and value == "IN":
            self.i += 1
            self.take("punct", "(")
            values = [self.value()]
            while self.peek()[:2] == ("punct", ","):
                self.i += 1
                values.append(self.value())
            self.take("punct", ")")
            if len(values) > MAX_IN_VALUES:
                raise WhereError(f"where: IN list on {field} has more than {MAX_IN_VALUES} values")
            return Comparison(field, "IN", tuple(values))
        raise WhereError(f"where: expected an operator after {field} but found {value or 'end of clause'!r}")

    def value(self) -> Value:
        kind, text, _ = self.peek()
        if kind == "str":
            self.i += 1
            quote = text[0]
            return text[1:-1].replace(quote * 2, quote)
        if kind == "num":
            self.i += 1
            return float(text) if "." in text else int(text)
        raise WhereError(f"where: expected a quoted value or a number but found {text or 'end of clause'!r}")


def _combine(op: str, items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:  # a AND (b AND c) is a AND b AND c
        flat.extend(item.items if isinstance(item, BoolExpr) and item.op == op else [item])
    return BoolExpr(op, tuple(flat))


def parse_where(text: str | None) -> Node | None:
    """Parse a where clause (syntax only); None or blank -> None. Raises WhereError."""
    if text is None or not str(text).strip():
        return None
    if not isinstance(text, str):
        raise WhereError("where: must be a string")
    if len(text) > MAX_WHERE_LENGTH:
        raise WhereError(f"where: longer than {MAX_WHERE_LENGTH} characters")
    return _Parser(text).parse()


def _format_value(value: Value) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def to_text(node: Node | None) -> str:
    """The canonical text of an AST (parse_where(to_text(n)) == n)."""
    if node is None:
        return ""
    if isinstance(node, Comparison):
        if node.op == "IN":
            return f"{node.field} IN ({', '.join(_format_value(v) for v in node.value)})"
        return f"{node.field} {node.op} {_format_value(node.value)}"
    parts = []
    for item in node.items:
        text = to_text(item)
        # only an OR inside an AND needs parentheses (AND binds tighter)
        parts.append(f"({text})" if isinstance(item, BoolExpr) and item.op == "OR" else text)
    return f" {node.op} ".join(parts)


def _resolve(name: str, fields: Mapping[str, WhereField]) -> tuple[str, WhereField]:
    if name in fields:
        return name, fields[name]
    lowered = {k.lower(): k for k in fields}
    if name.lower() in lowered:
        key = lowered[name.lower()]
        return key, fields[key]
    raise WhereError(f"where: unknown field {name!r}")


def _coerce(field: str, spec: WhereField, value: Value):
    if spec.kind == "num":
        if isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                raise WhereError(f"where: {field} needs a number, got {value!r}") from None
        return value
    if spec.kind == "date":
        text = str(value)
        try:
            return dt.date.fromisoformat(text[:10]) if len(text) >= 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise WhereError(f"where: {field} needs a date like '2026-01-31', got {value!r}") from None
    return str(value)


def validate(node: Node | None, fields: Mapping[str, WhereField], *, personal_hidden: bool = False) -> Node | None:
    """Check fields and values against the API's rules; returns the AST with canonical field names."""
    if node is None:
        return None
    if isinstance(node, BoolExpr):
        return BoolExpr(node.op, tuple(validate(i, fields, personal_hidden=personal_hidden) for i in node.items))
    name, spec = _resolve(node.field, fields)
    if not spec.filterable:
        raise WhereError(f"where: field {name!r} cannot be used in where" + (f" ({spec.why_not})" if spec.why_not else ""))
    if spec.personal and personal_hidden:
        raise WhereError(f"where: field {name!r} is personal data, which the team admin has hidden")
    if node.op == "LIKE":
        if name.lower() in NO_WILDCARD_FIELDS or spec.kind != "str":
            raise WhereError(f"where: wildcards are not allowed on {name!r}")
        plain = len(node.value.replace("%", "").replace("_", ""))
        if plain < MIN_LIKE_CHARACTERS and ("%" in node.value or "_" in node.value):
            raise WhereError(f"where: a wildcard pattern needs at least {MIN_LIKE_CHARACTERS} non-wildcard characters")
        return Comparison(name, "LIKE", node.value)
    if node.op == "IN":
        return Comparison(name, "IN", tuple(_coerce(name, spec, v) for v in node.value))
    return Comparison(name, node.op, _coerce(name, spec, node.value))


def to_sql(node: Node | None, fields: Mapping[str, WhereField]) -> tuple[str, list]:
    """Compile a validated AST to a SQL condition with ``?`` placeholders and its parameters."""
    if node is None:
        return "TRUE", []
    if isinstance(node, BoolExpr):
        parts, params = [], []
        for item in node.items:
            sql, p = to_sql(item, fields)
            parts.append(f"({sql})")
            params.extend(p)
        return f" {node.op} ".join(parts), params
    spec = fields[node.field]
    if node.op == "IN":
        return f"{spec.sql} IN ({', '.join('?' for _ in node.value)})", list(node.value)
    return f"{spec.sql} {node.op} ?", [node.value]


def compile_where(text: str | None, fields: Mapping[str, WhereField], *, personal_hidden: bool = False):
    """parse + validate + to_sql in one call: returns (sql, params)."""
    return to_sql(validate(parse_where(text), fields, personal_hidden=personal_hidden), fields)
