"""A Bulk API 2.0 result page as CSV, rendered straight from the stored rows.

Salesforce's Bulk 2.0 CSV (Bulk API 2.0 guide, "Get Results for a Query Job"): one header
row of the selected fields (parent fields as `Owner.Email`), every value quoted, a null as
an empty value, booleans as true/false, datetimes as `2024-06-01T08:15:02.000Z`, dates as
`YYYY-MM-DD`. A null or hidden lookup leaves all its parent's columns empty.

The SELECT tree (`paths.Node`) is compiled once per page into a function `row -> cells`:
runs of plain fields are one `operator.itemgetter` over the stored tuple, a parent is one
lookup in its table (or, for a polymorphic lookup, the store's id index), so a row costs a
few C calls and one formatting pass instead of a JSON record rendered and walked again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import Any

from sandbox.salesforce.paths import FieldOut, Node, ParentOut
from sandbox.salesforce.store import Row, Store, Table

Values = Callable[[Row], list[Any]]

DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^",
              "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


def headers(node: Node, prefix: str = "") -> list[str]:
    """The CSV header of every selected field, in SELECT order (`Owner.Email` for a parent's)."""
    out: list[str] = []
    for key, item in node.items:
        if isinstance(item, FieldOut):
            out.append(prefix + key)
        elif isinstance(item, ParentOut):
            out.extend(headers(item.node, prefix + key + "."))
    return out


def csv_value(value: Any) -> str:
    """A stored value as Bulk 2.0 CSV writes it (before quoting)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, datetime):
        # isoformat is `2024-06-01T08:15:02.000+00:00` once in UTC: keep the milliseconds
        return value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _width(node: Node) -> int:
    return sum(_width(item.node) if isinstance(item, ParentOut) else 1
               for _, item in node.items)


def compile_values(node: Node, table: Table | None, store: Store, include_deleted: bool
                   ) -> Values:
    """`row -> raw values` of `node`'s columns for a row of `table` (None: the row's table is
    only known at run time, after a polymorphic lookup; its fields are found by name)."""
    parts: list[Values] = []
    run: list[int] = []

    def close_run() -> None:
        if run:
            slots = tuple(run)
            if len(slots) == 1:
                slot = slots[0]
                parts.append(lambda row: [row[slot]])
            else:
                getter = itemgetter(*slots)
                parts.append(lambda row: list(getter(row)))
            run.clear()

    for key, item in node.items:
        if isinstance(item, FieldOut) and item.slot is not None and table is not None:
            run.append(item.slot)
            continue
        close_run()
        if isinstance(item, FieldOut):
            raise ValueError(f"field {key} needs its table (a polymorphic parent's)")
        if not isinstance(item, ParentOut):
            raise ValueError(f"{key}: child relationships are not supported in Bulk API 2.0")
        parts.append(_parent(item, store, include_deleted))
    close_run()
    if len(parts) == 1:
        return parts[0]

    def values(row: Row) -> list[Any]:
        out: list[Any] = []
        for part in parts:
            out.extend(part(row))
        return out
    return values


def _parent(item: ParentOut, store: Store, include_deleted: bool) -> Values:
    width = _width(item.node)
    empty = [None] * width
    slot = item.hop.slot
    target = item.hop.target
    if target is None:  # polymorphic (What, Who): Id, Name and Type of whatever it points at
        names = [key for key, _ in item.node.items]

        def polymorphic(row: Row) -> list[Any]:
            ref = row[slot]
            found = store.locate(ref) if ref is not None else None
            if found is None:
                return empty
            found_table, found_row = found
            if not include_deleted and found_table.is_deleted(found_row):
                return empty
            out: list[Any] = []
            for name in names:
                if name == "Type":
                    out.append(found_table.sobject.name)
                    continue
                where = found_table.slots.get(name)
                out.append(found_row[where] if where is not None else None)
            return out
        return polymorphic
    inner = compile_values(item.node, target, store, include_deleted)
    rows = target.rows
    check_deleted = not include_deleted and target.deleted_slot is not None

    def parent(row: Row) -> list[Any]:
        ref = row[slot]
        found = rows.get(ref) if ref is not None else None
        if found is None or (check_deleted and target.is_deleted(found)):
            return empty
        return inner(found)
    return parent


def render_page(node: Node, table: Table, store: Store, include_deleted: bool,
                ids: Iterable[str], *, delimiter: str, line_ending: str) -> bytes:
    """One results page: the header and a row for each id still stored (a hard-deleted
    row is gone), every value quoted."""
    values = compile_values(node, table, store, include_deleted)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=DELIMITERS[delimiter],
                        lineterminator=LINE_ENDINGS[line_ending], quoting=csv.QUOTE_ALL)
    writer.writerow(headers(node))
    stored = table.rows
    fmt = csv_value
    writer.writerows([fmt(v) for v in values(row)]
                     for row in (stored.get(i) for i in ids) if row is not None)
    return out.getvalue().encode()
