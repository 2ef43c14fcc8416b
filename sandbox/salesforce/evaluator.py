"""Run a parsed SOQL query against the store: match ids once, render rows on demand.

`compile_query` validates everything up front (objects, fields, literal types) and returns a
`CompiledQuery`; `matching_ids()` evaluates the filter, the order and LIMIT/OFFSET into a list
of ids, and `render(ids)` turns just one page of them into JSON records, so a cursor over a
million rows holds only their ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.salesforce.errors import SFError
from sandbox.salesforce.filters import FilterCompiler, Predicate, plan_candidates
from sandbox.salesforce.paths import Node, Resolver, add_path, render_node
from sandbox.salesforce.schema import IDISH, STRINGISH
from sandbox.salesforce.soql import Count, InQuery, Path, Query, parse, query_error
from sandbox.salesforce.store import Row, Store, Table

MAX_OFFSET = 2000


@dataclass
class Child:
    """A child subquery, e.g. `(SELECT ContactId FROM OpportunityContactRoles)`."""

    name: str
    compiled: CompiledQuery


@dataclass
class CompiledQuery:
    store: Store
    table: Table
    node: Node
    include_deleted: bool
    predicate: Predicate | None
    sort_keys: list[tuple[Callable[[Row], Any], bool, bool, bool]]  # get, desc, nulls last, fold
    limit: int | None
    offset: int | None
    count_only: bool
    candidates: list[str] | None = None
    children: list[Child] = field(default_factory=list)
    lookup: str = ""  # for a child subquery: the child's lookup field pointing at the parent

    def _ordered(self, pairs: list[tuple[str, Row]]) -> list[str]:
        for get, descending, nulls_last, fold in reversed(self.sort_keys):
            low, high = (2,), (0,)  # placed after / before every (1, value) when ascending
            none_key = (low if nulls_last else high) if not descending else (
                high if nulls_last else low)

            def key(pair: tuple[str, Row], get: Callable[[Row], Any] = get,
                    none_key: tuple[int] = none_key, fold: bool = fold) -> tuple[Any, ...]:
                value = get(pair[1])
                if value is None:
                    return none_key
                return (1, value.casefold() if fold else value)

            pairs.sort(key=key, reverse=descending)
        ids = [record_id for record_id, _ in pairs]
        start = self.offset or 0
        end = None if self.limit is None else start + self.limit
        return ids[start:end]

    def rows(self) -> list[tuple[str, Row]]:
        table, predicate = self.table, self.predicate
        if self.candidates is not None:
            source: Any = ((i, table.rows[i]) for i in sorted(self.candidates))
        elif self.include_deleted:
            source = table.rows.items()
        else:
            source = table.live_rows()
        skip_deleted = not self.include_deleted and self.candidates is not None
        out = []
        for record_id, row in source:
            if skip_deleted and table.is_deleted(row):
                continue
            if predicate is None or predicate(row):
                out.append((record_id, row))
        return out

    def matching_ids(self) -> list[str]:
        return self._ordered(self.rows())

    def children_of(self, parent_id: str) -> list[str]:
        """Ids of a child subquery's rows for one parent."""
        pairs: list[tuple[str, Row]] = []
        for child_id in self.table.children(self.lookup, parent_id):
            row = self.table.rows[child_id]
            if not self.include_deleted and self.table.is_deleted(row):
                continue
            if self.predicate is None or self.predicate(row):
                pairs.append((child_id, row))
        return self._ordered(pairs)

    def render(self, ids: list[str], version: str) -> list[dict[str, Any]]:
        table = self.table
        return [render_node(self.node, table, table.rows[i], version, self.store,
                            self._render_child_factory(version), self.include_deleted)
                for i in ids]

    def _render_child_factory(self, version: str) -> Callable[[Any, Table, Row], Any]:
        def render_child(child: Child, table: Table, row: Row) -> Any:
            ids = child.compiled.children_of(row[0])
            if not ids:
                return None  # an empty child relationship is null, not an empty object
            return {"totalSize": len(ids), "done": True,
                    "records": child.compiled.render(ids, version)}
        return render_child

    def child_count(self, row: Row) -> int:
        return sum(len(c.compiled.children_of(row[0])) for c in self.children)


def compile_query(store: Store, soql: str, *, include_deleted: bool,
                  now: datetime) -> CompiledQuery:
    query = parse(soql)
    return _compile(store, soql, query, include_deleted=include_deleted, now=now, parent=None)


def _compile(store: Store, soql: str, query: Query, *, include_deleted: bool, now: datetime,
             parent: Table | None) -> CompiledQuery:
    lookup = ""
    if parent is None:
        table = store.table(query.sobject)
        if table is None:
            raise query_error(
                soql, "INVALID_TYPE", query.sobject_pos,
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.")
    else:
        relation = parent.sobject.child(query.sobject)
        if relation is None:
            raise query_error(
                soql, "INVALID_TYPE", query.sobject_pos,
                f"Didn't understand relationship '{query.sobject}' in FROM part of query call. "
                "If you are attempting to use a custom relationship, be sure to append the "
                "'__r' after the custom relationship name. Please reference your WSDL or the "
                "describe call for the appropriate names.")
        table = store[relation.child]
        lookup = relation.field
    resolver = Resolver(store, table, soql, include_deleted=include_deleted)

    def run_subquery(cond: InQuery) -> set[Any]:
        inner = cond.query
        if len(inner.select) != 1 or not isinstance(inner.select[0], Path):
            raise query_error(soql, "MALFORMED_QUERY", inner.sobject_pos,
                              "semi join sub selects must select exactly one id field")
        compiled = _compile(store, soql, inner, include_deleted=False, now=now, parent=None)
        selected = Resolver(store, compiled.table, soql, include_deleted=False).resolve(
            inner.select[0])
        if selected.field.type not in IDISH:
            raise query_error(soql, "INVALID_FIELD", inner.select[0].pos,
                              "semi join sub selects can only select id fields")
        return {selected.getter(row) for _, row in compiled.rows()} - {None}

    node = Node([])
    children: list[Child] = []
    count_only = False
    for item in query.select:
        if isinstance(item, Count):
            if len(query.select) != 1:
                raise query_error(soql, "MALFORMED_QUERY", query.sobject_pos,
                                  "COUNT() must be the only element in the SELECT list")
            count_only = True
        elif isinstance(item, Query):
            if parent is not None:
                raise query_error(soql, "MALFORMED_QUERY", item.sobject_pos,
                                  "nested sub-selects are not supported")
            sub = _compile(store, soql, item, include_deleted=include_deleted, now=now,
                           parent=table)
            relation = table.sobject.child(item.sobject)
            assert relation is not None  # _compile checked it
            child = Child(relation.name, sub)
            children.append(child)
            node.items.append((child.name, child))
        else:
            add_path(node, resolver.resolve(item), table, store)

    filters = FilterCompiler(resolver, now, run_subquery)
    predicate = filters.compile(query.where) if query.where is not None else None
    sort_keys = []
    for order in query.order:
        resolved = resolver.resolve(order.path)
        if not resolved.field.sortable:
            raise query_error(soql, "INVALID_FIELD", order.path.pos,
                              f"field '{resolved.field.name}' can not be sorted in a query call")
        fold = resolved.field.type in STRINGISH  # text sorts case-insensitively, ids do not
        sort_keys.append((resolved.getter, order.descending, order.nulls_last, fold))
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SFError.one(400, "NUMBER_OUTSIDE_VALID_RANGE",
                          f"Maximum SOQL offset allowed is {MAX_OFFSET}")
    compiled = CompiledQuery(store, table, node, include_deleted, predicate, sort_keys,
                             query.limit, query.offset, count_only,
                             candidates=plan_candidates(query.where, resolver) if parent is None
                             else None, children=children, lookup=lookup)
    return compiled
