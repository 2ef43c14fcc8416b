"""WHERE clauses compiled into Python predicates over stored rows.

SOQL semantics kept: string comparisons (=, !=, IN, LIKE, <, >) are case-insensitive;
`!=` and `NOT IN` match null values; a date literal only compares with a date field and a
datetime literal only with a datetime field; ids match in their 15- or 18-character form;
long text areas cannot be filtered; relative date literals are day ranges in UTC.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sandbox.salesforce.ids import normalize_id
from sandbox.salesforce.paths import Resolved, Resolver
from sandbox.salesforce.schema import IDISH, NUMERIC, STRINGISH, Field
from sandbox.salesforce.soql import (
    BoolOp,
    Compare,
    Condition,
    InList,
    InQuery,
    Like,
    Literal,
    Pos,
    query_error,
    unescape,
)
from sandbox.salesforce.store import Row

Predicate = Callable[[Row], bool]
SubqueryRunner = Callable[[InQuery], set[Any]]


def _type_name(field: Field) -> str:
    if field.type in NUMERIC:
        return "int" if field.type == "int" else "double"
    return {"datetime": "dateTime", "id": "id", "reference": "reference"}.get(
        field.type, "string" if field.type in STRINGISH else field.type)


def day_range(name: str, n: int, now: datetime) -> tuple[date, date]:
    """[start, end) in days of a relative date literal (org time zone: UTC)."""
    today = now.astimezone(UTC).date()
    one = timedelta(days=1)
    if name == "TODAY":
        return today, today + one
    if name == "YESTERDAY":
        return today - one, today
    if name == "TOMORROW":
        return today + one, today + 2 * one
    if name == "LAST_N_DAYS":
        return today - n * one, today + one
    if name == "NEXT_N_DAYS":
        return today + one, today + (n + 1) * one
    if name == "N_DAYS_AGO":
        return today - n * one, today - (n - 1) * one
    first = today.replace(day=1)
    if name in ("THIS_MONTH", "LAST_MONTH", "NEXT_MONTH"):
        shift = {"THIS_MONTH": 0, "LAST_MONTH": -1, "NEXT_MONTH": 1}[name]
        month = first.month - 1 + shift
        start = date(first.year + month // 12, month % 12 + 1, 1)
        month += 1
        return start, date(first.year + month // 12, month % 12 + 1, 1)
    year = today.year - (1 if name == "LAST_YEAR" else 0)
    return date(year, 1, 1), date(year + 1, 1, 1)


class FilterCompiler:
    def __init__(self, resolver: Resolver, now: datetime, run_subquery: SubqueryRunner) -> None:
        self.resolver = resolver
        self.now = now
        self.run_subquery = run_subquery

    @property
    def soql(self) -> str:
        return self.resolver.soql

    def compile(self, cond: Condition) -> Predicate:
        if isinstance(cond, BoolOp):
            parts = [self.compile(c) for c in cond.items]
            if cond.op == "not":
                inner = parts[0]
                return lambda row: not inner(row)
            if cond.op == "and":
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(cond, Compare):
            return self._compare(cond)
        if isinstance(cond, InList):
            return self._in_list(cond)
        if isinstance(cond, InQuery):
            return self._in_query(cond)
        return self._like(cond)

    def filterable(self, resolved: Resolved, pos: Pos) -> None:
        if not resolved.field.filterable:
            raise query_error(self.soql, "INVALID_FIELD", pos,
                              f"field '{resolved.field.name}' can not be filtered in a query call")

    def _value(self, field: Field, lit: Literal) -> Any:
        """A literal converted to the stored form it is compared with (strings case-folded)."""
        kind = field.type
        ok = ((kind in STRINGISH and lit.kind == "string")
              or (kind in IDISH and lit.kind == "string")
              or (kind == "boolean" and lit.kind == "boolean")
              or (kind in NUMERIC and lit.kind == "number")
              or (kind == "date" and lit.kind in ("date", "reldate"))
              or (kind == "datetime" and lit.kind in ("datetime", "reldate"))
              or lit.kind == "null")
        if not ok:
            quoted = kind in STRINGISH or kind in IDISH
            raise query_error(
                self.soql, "INVALID_FIELD", lit.pos,
                f"value of filter criterion for field '{field.name}' must be of type "
                f"{_type_name(field)} and should {'' if quoted else 'not '}be enclosed in quotes")
        if lit.kind == "null":
            return None
        if kind in IDISH and field.name != "Type":
            normal = normalize_id(lit.value)
            if normal is None and lit.value != "":
                raise query_error(self.soql, "INVALID_QUERY_FILTER_OPERATOR", lit.pos,
                                  f"invalid ID field: {lit.value}")
            return normal
        if kind in STRINGISH or field.name == "Type":
            return str(lit.value).casefold()
        return lit.value

    def _key(self, resolved: Resolved) -> Callable[[Row], Any]:
        get = resolved.getter
        if resolved.field.type in STRINGISH or resolved.field.name == "Type":
            def folded(row: Row) -> Any:
                value = get(row)
                return value.casefold() if isinstance(value, str) else value
            return folded
        return get

    def _compare(self, cond: Compare) -> Predicate:
        resolved = self.resolver.resolve(cond.path)
        self.filterable(resolved, cond.path.pos)
        field, op = resolved.field, cond.op
        if cond.value.kind == "reldate":
            return self._relative(resolved, cond)
        value = self._value(field, cond.value)
        get = self._key(resolved)
        if value is None:
            if op not in ("=", "!="):
                return lambda row: False
            return (lambda row: get(row) is None) if op == "=" else (
                lambda row: get(row) is not None)
        if field.type in NUMERIC:
            value = float(value)
        if op == "=":
            return lambda row: get(row) == value
        if op == "!=":
            return lambda row: get(row) != value
        compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]

        def ordered(row: Row) -> bool:
            current = get(row)
            return current is not None and bool(compare(current, value))
        return ordered

    def _relative(self, resolved: Resolved, cond: Compare) -> Predicate:
        self._value(resolved.field, cond.value)  # type check only
        name, n = cond.value.value
        start_day, end_day = day_range(name, n, self.now)
        start: Any = start_day
        end: Any = end_day
        if resolved.field.type == "datetime":
            start = datetime.combine(start_day, time(), tzinfo=UTC)
            end = datetime.combine(end_day, time(), tzinfo=UTC)
        get, op = resolved.getter, cond.op

        def inside(row: Row) -> bool:
            value = get(row)
            if value is None:
                return op == "!="
            if op == "=":
                return bool(start <= value < end)
            if op == "!=":
                return not start <= value < end
            if op == "<":
                return bool(value < start)
            if op == "<=":
                return bool(value < end)
            if op == ">":
                return bool(value >= end)
            return bool(value >= start)
        return inside

    def _in_list(self, cond: InList) -> Predicate:
        resolved = self.resolver.resolve(cond.path)
        self.filterable(resolved, cond.path.pos)
        values = {self._value(resolved.field, lit) for lit in cond.values}
        if resolved.field.type in NUMERIC:
            values = {float(v) if v is not None else None for v in values}
        get, negate = self._key(resolved), cond.negate
        return lambda row: (get(row) in values) != negate

    def _in_query(self, cond: InQuery) -> Predicate:
        resolved = self.resolver.resolve(cond.path)
        self.filterable(resolved, cond.path.pos)
        if resolved.field.type not in IDISH:
            raise query_error(self.soql, "INVALID_FIELD", cond.path.pos,
                              "semi join sub selects can only select id fields")
        values = self.run_subquery(cond)
        get, negate = resolved.getter, cond.negate
        return lambda row: (get(row) in values) != negate

    def _like(self, cond: Like) -> Predicate:
        resolved = self.resolver.resolve(cond.path)
        self.filterable(resolved, cond.path.pos)
        if resolved.field.type not in STRINGISH:
            raise query_error(self.soql, "INVALID_FIELD", cond.pos,
                              f"invalid operator on {_type_name(resolved.field)} field: "
                              f"{resolved.field.name}")
        try:
            body = unescape(cond.pattern, like=True)
        except ValueError as exc:
            raise query_error(self.soql, "MALFORMED_QUERY", cond.pos, str(exc)) from None
        regex = re.compile(like_to_regex(body), re.IGNORECASE | re.DOTALL)
        get = resolved.getter

        def matches(row: Row) -> bool:
            value = get(row)
            return value is not None and regex.fullmatch(value) is not None
        return matches


def like_to_regex(body: str) -> str:
    """`%` any run, `_` one character, `\\%` and `\\_` the characters themselves."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] in "%_":
            out.append(re.escape(body[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return "".join(out)


def plan_candidates(cond: Condition | None, resolver: Resolver) -> list[str] | None:
    """Ids worth testing when the top-level AND pins Id or an indexed lookup; None = scan."""
    if cond is None:
        return None
    items = cond.items if isinstance(cond, BoolOp) and cond.op == "and" else (cond,)
    table = resolver.root
    for item in items:
        if isinstance(item, Compare) and item.op == "=" and item.value.kind == "string":
            literals: tuple[Literal, ...] = (item.value,)
        elif isinstance(item, InList) and not item.negate and all(
                v.kind == "string" for v in item.values):
            literals = item.values
        else:
            continue
        if len(item.path.parts) != 1:
            continue
        field = table.sobject.field(item.path.parts[0])
        if field is None or field.type not in IDISH:
            continue
        ids = [i for i in (normalize_id(v.value) for v in literals) if i]
        if field.name == "Id":
            return [i for i in dict.fromkeys(ids) if i in table.rows]
        if table.slot(field.name) in table.ref_index:
            out: dict[str, None] = {}
            for parent in ids:
                out.update(dict.fromkeys(table.children(field.name, parent)))
            return list(out)
    return None
