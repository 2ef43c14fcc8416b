"""Field paths (`Owner.IsActive`, `What.Name`) resolved against the schema, and value rendering.

A resolved path is a chain of lookup hops plus a final field; its getter walks the hops
through the store. Polymorphic lookups (Task.Who, Task.What) resolve per row by id prefix and
expose the fields of Salesforce's `Name` pseudo-object: Id, Name and Type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sandbox.salesforce.ids import format_date, format_datetime
from sandbox.salesforce.schema import Field, SObjectType
from sandbox.salesforce.soql import Path, query_error
from sandbox.salesforce.store import Row, Store, Table

Getter = Callable[[Row], Any]
NAME_FIELDS = {"id": Field("Id", "id", 18), "name": Field("Name", "string", 255),
               "type": Field("Type", "string", 40)}


def render(value: Any) -> Any:
    """A stored value as Salesforce puts it in JSON."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return format_date(value)
    return value


@dataclass
class Hop:
    field: Field  # the lookup field on the source object
    slot: int
    target: Table | None  # None: polymorphic, resolved per row


@dataclass
class Resolved:
    text: str
    hops: list[Hop]
    field: Field  # the final field (a Name pseudo-field after a polymorphic hop)
    owner: SObjectType | None  # the object holding the final field (None if polymorphic)
    getter: Getter


class Resolver:
    """Resolves paths relative to one root object for one query (knows its text for errors)."""

    def __init__(self, store: Store, root: Table, soql: str, *, include_deleted: bool) -> None:
        self.store = store
        self.root = root
        self.soql = soql
        self.include_deleted = include_deleted

    def resolve(self, path: Path) -> Resolved:
        parts = list(path.parts)
        sobject = self.root.sobject
        if (len(parts) > 1 and parts[0].lower() == sobject.name.lower()
                and sobject.relationship(parts[0]) is None):
            parts = parts[1:]
        hops: list[Hop] = []
        current: SObjectType | None = sobject
        for part in parts[:-1]:
            if current is None:  # past a polymorphic hop: no further traversal
                raise self._bad_relationship(path, part)
            lookup = current.relationship(part)
            if lookup is None:
                raise self._bad_relationship(path, part)
            table = self.store[current.name]
            target = None if lookup.polymorphic else self.store[lookup.reference_to[0]]
            hops.append(Hop(lookup, table.slot(lookup.name), target))
            current = target.sobject if target is not None else None
        last = parts[-1]
        if current is None:
            final = NAME_FIELDS.get(last.lower())
            if final is None:
                raise self._no_column(path, last, "Name")
        else:
            found = current.field(last)
            if found is None:
                raise self._no_column(path, last, current.name)
            final = found
        return Resolved(".".join(parts), hops, final, current, self._getter(hops, final, current))

    def _getter(self, hops: list[Hop], final: Field, owner: SObjectType | None) -> Getter:
        if not hops:
            return itemgetter(self.root.slot(final.name))
        store, include_deleted = self.store, self.include_deleted

        def follow(row: Row) -> tuple[Table, Row] | None:
            table = self.root
            for hop in hops:
                ref = row[hop.slot]
                if ref is None:
                    return None
                if hop.target is None:
                    found = store.locate(ref)
                    if found is None:
                        return None
                    table, row = found
                else:
                    table = hop.target
                    nxt = table.rows.get(ref)
                    if nxt is None:
                        return None
                    row = nxt
                if not include_deleted and table.is_deleted(row):
                    return None
            return table, row

        if owner is None:
            name = final.name

            def polymorphic(row: Row) -> Any:
                found = follow(row)
                if found is None:
                    return None
                table, target = found
                if name == "Type":
                    return table.sobject.name
                slot = table.slots.get(name)
                return target[slot] if slot is not None else None

            return polymorphic
        final_slot = self.store[owner.name].slot(final.name)

        def walk(row: Row) -> Any:
            found = follow(row)
            return None if found is None else found[1][final_slot]

        return walk

    def _bad_relationship(self, path: Path, part: str) -> Exception:
        return query_error(
            self.soql, "INVALID_FIELD", path.pos,
            f"Didn't understand relationship '{part}' in field path. If you are attempting to "
            "use a custom relationship, be sure to append the '__r' after the custom "
            "relationship name. Please reference your WSDL or the describe call for the "
            "appropriate names.")

    def _no_column(self, path: Path, name: str, entity: str) -> Exception:
        return query_error(
            self.soql, "INVALID_FIELD", path.pos,
            f"No such column '{name}' on entity '{entity}'. If you are attempting to use a "
            "custom field, be sure to append the '__c' after the custom field name. Please "
            "reference your WSDL or the describe call for the appropriate names.")


@dataclass
class Node:
    """One level of a SELECT's output: fields, parent objects and child subqueries, in order."""

    items: list[tuple[str, Any]]

    def find(self, key: str) -> Any:
        return next((item for k, item in self.items if k == key), None)


@dataclass
class FieldOut:
    name: str
    slot: int | None  # None: resolve by name on the (polymorphic) row's table


@dataclass
class ParentOut:
    name: str  # relationship name, e.g. "Owner"
    hop: Hop
    node: Node


def add_path(node: Node, resolved: Resolved, root: Table, store: Store) -> None:
    """Merge one resolved SELECT path into the output tree."""
    current = node
    table: Table | None = root
    for hop in resolved.hops:
        key = hop.field.relationship or hop.field.name
        parent = current.find(key)
        if not isinstance(parent, ParentOut):
            parent = ParentOut(key, hop, Node([]))
            current.items.append((key, parent))
        current = parent.node
        table = hop.target
    name = resolved.field.name
    if current.find(name) is None:
        current.items.append((name, FieldOut(name, table.slot(name) if table else None)))


def render_node(node: Node, table: Table, row: Row, version: str, store: Store,
                children: Callable[[Any, Table, Row], Any],
                include_deleted: bool) -> dict[str, Any]:
    record_id = row[0]
    out: dict[str, Any] = {"attributes": {
        "type": table.sobject.name,
        "url": f"/services/data/v{version}/sobjects/{table.sobject.name}/{record_id}"}}
    for key, item in node.items:
        if isinstance(item, FieldOut):
            if item.slot is not None:
                out[key] = render(row[item.slot])
            elif key == "Type":
                out[key] = table.sobject.name
            else:
                slot = table.slots.get(key)
                out[key] = render(row[slot]) if slot is not None else None
        elif isinstance(item, ParentOut):
            out[key] = _render_parent(item, row, version, store, children, include_deleted)
        else:
            out[key] = children(item, table, row)
    return out


def _render_parent(item: ParentOut, row: Row, version: str, store: Store,
                   children: Callable[[Any, Table, Row], Any],
                   include_deleted: bool) -> dict[str, Any] | None:
    ref = row[item.hop.slot]
    if ref is None:
        return None
    if item.hop.target is None:
        found = store.locate(ref)
        if found is None:
            return None
        target_table, target = found
    else:
        target_table = item.hop.target
        maybe = target_table.rows.get(ref)
        if maybe is None:
            return None
        target = maybe
    if not include_deleted and target_table.is_deleted(target):
        return None
    return render_node(item.node, target_table, target, version, store, children,
                       include_deleted)
