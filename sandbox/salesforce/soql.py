"""SOQL: a lark LALR grammar and a transformer into a small AST (no regular-expression parsing).

Covered: SELECT of fields, parent paths (`Owner.IsActive`), child subqueries and COUNT();
FROM one object; WHERE with AND/OR/NOT and parentheses (AND and OR may not be mixed without
parentheses, as in SOQL), = != <> < <= > >=, IN / NOT IN (values or a semi-join subquery),
LIKE; string, number, date, datetime, boolean, null and relative date literals (TODAY,
YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n, N_DAYS_AGO:n, THIS_MONTH, LAST_MONTH);
ORDER BY several keys with ASC/DESC and NULLS FIRST/LAST; LIMIT; OFFSET.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from sandbox.salesforce.errors import SFError
from sandbox.salesforce.ids import parse_date, parse_datetime

GRAMMAR = r"""
start: query
query: "SELECT"i select_list "FROM"i NAME where? order? limit? offset?
select_list: select_item ("," select_item)*
?select_item: path
            | "(" query ")"          -> subquery
            | "COUNT"i "(" ")"        -> count
path: NAME ("." NAME)*
where: "WHERE"i condition
?condition: unary
          | unary ("AND"i unary)+    -> and_
          | unary ("OR"i unary)+     -> or_
?unary: "NOT"i unary                 -> not_
      | "(" condition ")"
      | comparison
comparison: path OPERATOR value                       -> compare
          | path "LIKE"i STRING                       -> like
          | path "IN"i "(" value ("," value)* ")"     -> in_
          | path "NOT"i "IN"i "(" value ("," value)* ")"  -> not_in
          | path "IN"i "(" query ")"                  -> in_query
          | path "NOT"i "IN"i "(" query ")"           -> not_in_query
value: STRING | NUMBER | DATETIME | DATE | TRUE | FALSE | NULL | RELDATE | RELDATE_N
order: "ORDER"i "BY"i order_item ("," order_item)*
order_item: path DIRECTION? NULLS?
limit: "LIMIT"i INT
offset: "OFFSET"i INT

OPERATOR: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
DIRECTION: /asc|desc/i
NULLS: /nulls[ \t\r\n]+(first|last)/i
TRUE: /true/i
FALSE: /false/i
NULL: /null/i
RELDATE.2: /today|yesterday|tomorrow|this_month|last_month|next_month|this_year|last_year/i
RELDATE_N.2: /(last_n_days|next_n_days|n_days_ago):[0-9]+/i
DATETIME.3: /[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}/ /(\.[0-9]+)?/ ZONE
ZONE: /(Z|[+-][0-9]{2}:?[0-9]{2})/
DATE.2: /[0-9]{4}-[0-9]{2}-[0-9]{2}/
NUMBER: /[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)/
INT: /[0-9]+/
STRING: /'([^'\\]|\\.)*'/s
NAME: /[a-z_][a-z0-9_]*/i
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b",
            "f": "\f", "%": "%", "_": "_"}


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]
    pos: Pos

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | date | datetime | boolean | null | reldate
    value: Any
    pos: Pos
    raw: str


@dataclass(frozen=True)
class Compare:
    path: Path
    op: str
    value: Literal


@dataclass(frozen=True)
class Like:
    path: Path
    pattern: str  # the raw literal body, escapes still in place
    pos: Pos


@dataclass(frozen=True)
class InList:
    path: Path
    values: tuple[Literal, ...]
    negate: bool


@dataclass(frozen=True)
class InQuery:
    path: Path
    query: Query
    negate: bool


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or | not
    items: tuple[Condition, ...]


Condition = Compare | Like | InList | InQuery | BoolOp


@dataclass(frozen=True)
class Count:
    pass


@dataclass(frozen=True)
class OrderItem:
    path: Path
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    select: list[Path | Query | Count]
    sobject: str
    sobject_pos: Pos
    where: Condition | None = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def unescape(body: str, *, like: bool = False) -> str:
    """The value of a quoted literal's body. In LIKE patterns `\\%` and `\\_` stay escaped
    (the caller turns them into literal characters)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "u" and len(body) >= i + 6:
            try:
                out.append(chr(int(body[i + 2:i + 6], 16)))
            except ValueError:
                raise ValueError("Invalid unicode escape") from None
            i += 6
            continue
        if nxt not in _ESCAPES:
            raise ValueError(f"Invalid string literal '{body}'. Illegal character sequence "
                             f"'\\{nxt}' in string literal.")
        out.append("\\" + nxt if like and nxt in "%_" else _ESCAPES[nxt])
        i += 2
    return "".join(out)


def _pos(token: Token) -> Pos:
    return Pos(token.line or 1, token.column or 1)


@v_args(inline=True)
class _ToAst(Transformer[Token, Query]):
    def start(self, query: Query) -> Query:
        return query

    def query(self, select: list[Path | Query | Count], name: Token, *rest: Any) -> Query:
        q = Query(select=select, sobject=str(name), sobject_pos=_pos(name))
        for part in rest:
            kind, value = part
            setattr(q, kind, value)
        return q

    def select_list(self, *items: Path | Query | Count) -> list[Path | Query | Count]:
        return list(items)

    def subquery(self, query: Query) -> Query:
        return query

    def count(self) -> Count:
        return Count()

    def path(self, *names: Token) -> Path:
        return Path(tuple(str(n) for n in names), _pos(names[0]))

    def where(self, condition: Condition) -> tuple[str, Condition]:
        return ("where", condition)

    def and_(self, *items: Condition) -> BoolOp:
        return BoolOp("and", items)

    def or_(self, *items: Condition) -> BoolOp:
        return BoolOp("or", items)

    def not_(self, item: Condition) -> BoolOp:
        return BoolOp("not", (item,))

    def compare(self, path: Path, op: Token, value: Literal) -> Compare:
        return Compare(path, "!=" if str(op) == "<>" else str(op), value)

    def like(self, path: Path, pattern: Token) -> Like:
        return Like(path, str(pattern)[1:-1], _pos(pattern))

    def in_(self, path: Path, *values: Literal) -> InList:
        return InList(path, values, False)

    def not_in(self, path: Path, *values: Literal) -> InList:
        return InList(path, values, True)

    def in_query(self, path: Path, query: Query) -> InQuery:
        return InQuery(path, query, False)

    def not_in_query(self, path: Path, query: Query) -> InQuery:
        return InQuery(path, query, True)

    def value(self, token: Token) -> Literal:
        raw, kind, pos = str(token), token.type, _pos(token)
        try:
            if kind == "STRING":
                return Literal("string", unescape(raw[1:-1]), pos, raw)
        except ValueError as exc:
            raise _LiteralError(str(exc), pos) from exc
        if kind == "NUMBER":
            number = float(raw)
            return Literal("number", int(number) if number.is_integer() and "." not in raw
                           else number, pos, raw)
        if kind in ("TRUE", "FALSE"):
            return Literal("boolean", kind == "TRUE", pos, raw)
        if kind == "NULL":
            return Literal("null", None, pos, raw)
        if kind == "DATE":
            day: date | None = parse_date(raw)
            if day is None:
                raise _LiteralError(f"line {pos.line}:{pos.column} no viable alternative at "
                                    f"character '{raw}'", pos)
            return Literal("date", day, pos, raw)
        if kind == "DATETIME":
            moment: datetime | None = parse_datetime(raw)
            if moment is None:
                raise _LiteralError(f"line {pos.line}:{pos.column} no viable alternative at "
                                    f"character '{raw}'", pos)
            return Literal("datetime", moment, pos, raw)
        name, _, n = raw.upper().partition(":")
        return Literal("reldate", (name, int(n) if n else 0), pos, raw)

    def order(self, *items: OrderItem) -> tuple[str, list[OrderItem]]:
        return ("order", list(items))

    def order_item(self, path: Path, *mods: Token) -> OrderItem:
        descending = any(m.type == "DIRECTION" and str(m).lower() == "desc" for m in mods)
        nulls = next((str(m).lower().split()[-1] for m in mods if m.type == "NULLS"), None)
        nulls_last = descending if nulls is None else nulls == "last"
        return OrderItem(path, descending, nulls_last)

    def limit(self, token: Token) -> tuple[str, int]:
        return ("limit", int(token))

    def offset(self, token: Token) -> tuple[str, int]:
        return ("offset", int(token))


class _LiteralError(Exception):
    def __init__(self, message: str, pos: Pos) -> None:
        super().__init__(message)
        self.pos = pos


def located(soql: str, pos: Pos, message: str) -> str:
    """Salesforce's error text: the query line, a caret, the row/column and the reason."""
    lines = soql.splitlines() or [""]
    line = lines[min(pos.line, len(lines)) - 1]
    return (f"\n{line}\n{' ' * max(pos.column - 1, 0)}^\n"
            f"ERROR at Row:{pos.line}:Column:{pos.column}\n{message}")


def query_error(soql: str, code: str, pos: Pos, message: str) -> SFError:
    return SFError.one(400, code, located(soql, pos, message))


def parse(soql: str) -> Query:
    """Parse `soql`; syntax errors raise SFError MALFORMED_QUERY like the real API."""
    if not soql.strip():
        raise SFError.one(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        tree = _PARSER.parse(soql)
        return _ToAst().transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(soql, exc) from None
    except Exception as exc:  # lark wraps transformer errors in VisitError
        inner = getattr(exc, "orig_exc", None)
        if isinstance(inner, _LiteralError):
            raise query_error(soql, "MALFORMED_QUERY", inner.pos, str(inner)) from None
        raise


def _syntax_error(soql: str, exc: UnexpectedInput) -> SFError:
    pos = Pos(exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken)
                                          and exc.token.type == "$END"):
        lines = soql.splitlines() or [""]
        pos = Pos(len(lines), len(lines[-1]) + 1)
        return query_error(soql, "MALFORMED_QUERY", pos, "unexpected token: '<EOF>'")
    if isinstance(exc, UnexpectedToken):
        return query_error(soql, "MALFORMED_QUERY", pos, f"unexpected token: '{exc.token}'")
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream or 0
        char = soql[at] if at < len(soql) else ""
        return query_error(soql, "MALFORMED_QUERY", pos,
                           f"line {pos.line}:{pos.column} no viable alternative at character "
                           f"'{char}'")
    return query_error(soql, "MALFORMED_QUERY", pos, "unexpected token")
