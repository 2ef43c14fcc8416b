"""The CRM search engine: `POST /crm/v3/objects/{type}/search` semantics (reference §1.3).

Filter groups are OR-ed, filters inside a group AND-ed; values are strings, compared as
numbers for number properties and as epoch milliseconds for date/datetime properties. One
sort is honoured (ties broken by id), `after` is an offset, and nothing past 10,000 results
can be paged to.

A full pull over 100k objects must not rescan everything per page, so the sorted match list
of a query is cached until the next index change. An `hs_object_id GT/GTE <x>` filter (the
keyset-paging bound) is left out of the cache key and applied with a bisection, so every
keyset restart reuses the same cached list.
"""

from __future__ import annotations

import bisect
import fnmatch
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot.errors import invalid
from sandbox.hubspot.schema import OBJECT_TYPES, PropDef
from sandbox.hubspot.store import Record
from sandbox.hubspot.values import parse_time, time_ms

OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
MAX_GROUPS, MAX_FILTERS, MAX_TOTAL_FILTERS = 5, 6, 18
MAX_LIMIT, MAX_RESULTS, MAX_QUERY = 200, 10_000, 3000
_TOKEN = re.compile(r"[^\w@.*-]+")

Filter = tuple[str, str, str | None, str | None, tuple[str, ...] | None]
Predicate = Callable[[Record], bool]


@dataclass(frozen=True)
class Query:
    type: str
    groups: tuple[tuple[Filter, ...], ...]
    sort: tuple[str, bool] | None  # (property, descending)
    text: str | None
    bound: tuple[int, bool] | None = None  # stripped hs_object_id lower bound (id, inclusive)


@dataclass(frozen=True)
class SearchRequest:
    query: Query
    properties: list[str] | None
    limit: int
    offset: int


def _int(value: Any, name: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        invalid(f"{name} must be an integer, got {value!r}")


def parse_request(type_: str, body: dict[str, Any], props_def: dict[str, PropDef]) -> SearchRequest:
    raw_groups = body.get("filterGroups") or []
    if not isinstance(raw_groups, list):
        invalid("filterGroups must be a list")
    if len(raw_groups) > MAX_GROUPS:
        invalid(f"Too many filter groups: {len(raw_groups)}. A search can have up to "
                f"{MAX_GROUPS} filterGroups.")
    groups: list[tuple[Filter, ...]] = []
    total = 0
    for group in raw_groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            invalid("each filter group needs a 'filters' list")
        if len(filters) > MAX_FILTERS:
            invalid(f"Too many filters in a filter group: {len(filters)}. Each filterGroup can "
                    f"have up to {MAX_FILTERS} filters.")
        total += len(filters)
        groups.append(tuple(_parse_filter(f, props_def) for f in filters))
    if total > MAX_TOTAL_FILTERS:
        invalid(f"Too many filters: {total}. A search can have up to {MAX_TOTAL_FILTERS} filters "
                "in total.")
    sort = _parse_sort(body.get("sorts"), props_def)
    text = body.get("query")
    if text is not None and (not isinstance(text, str) or len(text) > MAX_QUERY):
        invalid(f"query must be a string of at most {MAX_QUERY} characters")
    limit = _int(body.get("limit", 10) if body.get("limit") is not None else 10, "limit")
    if limit > MAX_LIMIT or limit < 0:
        invalid(f"limit must be between 0 and {MAX_LIMIT}, got {limit}",
                context={"limit": [str(limit)]})
    after = body.get("after")
    offset = 0 if after in (None, "") else _int(after, "after")
    if offset < 0:
        invalid("after must not be negative")
    if offset + limit > MAX_RESULTS:
        invalid(f"Cannot page past {MAX_RESULTS} results: after={offset} limit={limit}. Use a "
                "narrower filter (for example hs_object_id GT the last id seen).",
                context={"after": [str(offset)], "limit": [str(limit)]})
    props = body.get("properties")
    if props is not None and not (isinstance(props, list)
                                  and all(isinstance(p, str) for p in props)):
        invalid("properties must be a list of strings")
    query = _strip_bound(Query(type_, tuple(groups), sort, text or None))
    return SearchRequest(query, props, limit, offset)


def _parse_filter(raw: Any, props_def: dict[str, PropDef]) -> Filter:
    if not isinstance(raw, dict):
        invalid("a filter must be an object")
    name, op = raw.get("propertyName"), raw.get("operator", "EQ")
    if not isinstance(name, str) or name not in props_def:
        invalid(f"Unable to find property {name!r} to filter on",
                context={"propertyName": [str(name)]})
    if op not in OPERATORS:
        invalid(f"Unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    value, high, values = raw.get("value"), raw.get("highValue"), raw.get("values")
    if op in ("IN", "NOT_IN"):
        if not isinstance(values, list) or not values:
            invalid(f"{op} on {name} needs a non-empty 'values' list")
        values = tuple(_text(v) for v in values)
    elif op not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
        if value is None:
            invalid(f"{op} on {name} needs a 'value'")
        if op == "BETWEEN" and high is None:
            invalid(f"BETWEEN on {name} needs a 'highValue'")
        values = None
    else:
        values = None
    return (name, op, None if value is None else _text(value),
            None if high is None else _text(high), values)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_sort(raw: Any, props_def: dict[str, PropDef]) -> tuple[str, bool] | None:
    if not raw:
        return None
    if not isinstance(raw, list):
        invalid("sorts must be a list")
    first = raw[0]  # HubSpot honours one sort only
    name: Any
    if isinstance(first, str):
        name, desc = first.lstrip("-"), first.startswith("-")
    elif isinstance(first, dict):
        name = first.get("propertyName")
        direction = str(first.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            invalid(f"sort direction must be ASCENDING or DESCENDING, got {direction}")
        desc = direction == "DESCENDING"
    else:
        invalid("a sort must be an object {propertyName, direction}")
    if not isinstance(name, str) or name not in props_def:
        invalid(f"Unable to sort by unknown property {name!r}")
    return name, desc


def _strip_bound(query: Query) -> Query:
    """Take an identical `hs_object_id GT|GTE x` out of every group (keyset paging bound)."""
    if not query.groups:
        return query
    bounds = set()
    for group in query.groups:
        found = [f for f in group if f[0] == "hs_object_id" and f[1] in ("GT", "GTE")]
        if len(found) != 1:
            return query
        bounds.add(found[0])
    if len(bounds) != 1:
        return query
    bound = bounds.pop()
    try:
        value = int(float(bound[2] or ""))
    except ValueError:
        return query
    groups = tuple(tuple(f for f in g if f != bound) for g in query.groups)
    # (bound AND g1) OR (bound AND g2) == bound AND (g1 OR g2); an emptied group matches all
    groups = groups if all(groups) else ()
    return Query(query.type, groups, query.sort, query.text, (value, bound[1] == "GTE"))


# -- matching ------------------------------------------------------------------------------
def _kind(name: str, props_def: dict[str, PropDef]) -> str:
    if name == "hs_object_id":
        return "id"
    kind = props_def[name].type
    return kind if kind in ("number", "datetime", "date", "bool") else "string"


def typed(rec: Record, name: str, kind: str) -> Any:
    """The comparable form of a property value (cached on the record version)."""
    if kind == "id":
        return float(rec.id)
    cache = rec.typed
    if name in cache:
        return cache[name]
    raw = rec.props.get(name)
    value: Any
    if raw is None or raw == "":
        value = None
    elif kind == "number":
        try:
            value = float(raw)
        except ValueError:
            value = None
    elif kind in ("datetime", "date"):
        value = time_ms(raw)
    else:
        value = raw.lower()
    cache[name] = value
    return value


def _operand(text: str, kind: str, name: str) -> Any:
    if kind in ("number", "id"):
        try:
            return float(text)
        except ValueError:
            invalid(f"{text!r} is not a valid number for {name}")
    if kind in ("datetime", "date"):
        moment = parse_time(text)
        if moment is None:
            invalid(f"{text!r} is not a valid date for {name}: use epoch milliseconds")
        return time_ms(text)
    return text.lower()


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.split(text.lower()) if t]


def _compile(f: Filter, props_def: dict[str, PropDef]) -> Predicate:
    name, op, value, high, values = f
    kind = _kind(name, props_def)
    get: Callable[[Record], Any] = lambda r: typed(r, name, kind)  # noqa: E731
    if op == "HAS_PROPERTY":
        return lambda r: get(r) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda r: get(r) is None
    if op in ("IN", "NOT_IN"):
        wanted = {_operand(v, kind, name) for v in values or ()}
        if op == "IN":
            return lambda r: get(r) in wanted
        return lambda r: get(r) not in wanted
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        needle = (value or "").lower()
        parts = _tokens(needle)

        def contains(r: Record) -> bool:
            raw = r.props.get(name) if kind != "id" else str(r.id)
            if not raw:
                return False
            if "*" in needle:
                return fnmatch.fnmatchcase(raw.lower(), needle) or any(
                    fnmatch.fnmatchcase(t, needle) for t in _tokens(raw))
            have = set(_tokens(raw))
            return bool(parts) and all(p in have for p in parts)

        return contains if op == "CONTAINS_TOKEN" else (lambda r: not contains(r))
    x = _operand(value or "", kind, name)
    if op == "EQ":
        return lambda r: get(r) == x
    if op == "NEQ":
        return lambda r: get(r) != x
    if op == "BETWEEN":
        hi = _operand(high or "", kind, name)
        return lambda r: (v := get(r)) is not None and x <= v <= hi
    compare: Callable[[Any], bool] = {
        "LT": lambda v: bool(v < x), "LTE": lambda v: bool(v <= x),
        "GT": lambda v: bool(v > x), "GTE": lambda v: bool(v >= x)}[op]
    return lambda r: (v := get(r)) is not None and compare(v)


def _text_match(text: str, type_: str) -> Predicate:
    words = _tokens(text)
    fields = OBJECT_TYPES[type_].text_props

    def match(r: Record) -> bool:
        have = [t for f in fields for t in _tokens(r.props.get(f) or "")]
        return all(any(t.startswith(w) for t in have) for w in words)

    return match


class SearchEngine:
    """Runs queries against an index view; caches sorted match lists per index generation."""

    def __init__(self, cache_size: int = 32) -> None:
        self._cache: OrderedDict[str, tuple[int, list[Record], list[int]]] = OrderedDict()
        self._size = cache_size

    def matches(self, query: Query, view: dict[int, Record], generation: int,
                props_def: dict[str, PropDef]) -> list[Record]:
        """Every match of `query`, sorted (ties and the default order: id ascending)."""
        key = json.dumps([query.type, query.groups, query.sort, query.text])
        hit = self._cache.get(key)
        if hit is None or hit[0] != generation:
            records, ids = self._run(query, view, props_def)
            hit = (generation, records, ids)
            self._cache[key] = hit
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        _, records, ids = hit
        if query.bound is None:
            return records
        low, inclusive = query.bound
        if query.sort is None or query.sort == ("hs_object_id", False):
            start = (bisect.bisect_left if inclusive else bisect.bisect_right)(ids, low)
            return records[start:]
        return [r for r in records if r.id > low or (inclusive and r.id == low)]

    def _run(self, query: Query, view: dict[int, Record],
             props_def: dict[str, PropDef]) -> tuple[list[Record], list[int]]:
        groups = [[_compile(f, props_def) for f in g] for g in query.groups]
        if query.text:
            text = _text_match(query.text, query.type)
            groups = [[*g, text] for g in groups] if groups else [[text]]
        if groups:
            found = [r for r in view.values() if any(all(p(r) for p in g) for g in groups)]
        else:
            found = list(view.values())
        found.sort(key=lambda r: r.id)
        if query.sort is not None and query.sort != ("hs_object_id", False):
            name, desc = query.sort
            kind = _kind(name, props_def)
            have = [r for r in found if typed(r, name, kind) is not None]
            missing = [r for r in found if typed(r, name, kind) is None]
            have.sort(key=lambda r: typed(r, name, kind), reverse=desc)
            found = have + missing
        ids = [r.id for r in found] if query.sort in (None, ("hs_object_id", False)) else []
        return found, ids
