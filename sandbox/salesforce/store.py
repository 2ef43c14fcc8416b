"""In-memory tables, compact enough for a million deals.

A row is a plain list in the field order of its sObject type (no per-row dict), values are
native Python types (str, bool, float, int, date, aware datetime, None). Rows are replaced,
never mutated in place, so an undo log of old rows gives allOrNone transactions for free.
Indexes: lookup fields flagged `indexed` (parent id -> child ids) and external-id fields
(case-folded value -> ids). Callers hold the emulator lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sandbox.salesforce.ids import IdFactory
from sandbox.salesforce.schema import SObjectType, type_for_id

Row = list[Any]


class Table:
    def __init__(self, sobject: SObjectType) -> None:
        self.sobject = sobject
        self.slots: dict[str, int] = {f.name: i for i, f in enumerate(sobject.fields)}
        self.rows: dict[str, Row] = {}
        self.deleted_slot = self.slots.get("IsDeleted")
        self.ref_index: dict[int, dict[str, dict[str, None]]] = {
            self.slots[f.name]: {} for f in sobject.fields if f.indexed and f.type == "reference"}
        self.key_index: dict[int, dict[str, dict[str, None]]] = {
            self.slots[f.name]: {} for f in sobject.fields if f.external_id}

    def slot(self, field_name: str) -> int:
        return self.slots[field_name]

    def blank(self) -> Row:
        return [None] * len(self.slots)

    def is_deleted(self, row: Row) -> bool:
        return self.deleted_slot is not None and bool(row[self.deleted_slot])

    def live_rows(self) -> Iterator[tuple[str, Row]]:
        slot = self.deleted_slot
        if slot is None:
            yield from self.rows.items()
            return
        for record_id, row in self.rows.items():
            if not row[slot]:
                yield record_id, row

    def children(self, field_name: str, parent_id: str) -> list[str]:
        index = self.ref_index.get(self.slots[field_name])
        if index is None:
            slot = self.slots[field_name]
            return [i for i, r in self.rows.items() if r[slot] == parent_id]
        return list(index.get(parent_id, ()))

    def by_key(self, field_name: str, value: str) -> list[str]:
        index = self.key_index[self.slots[field_name]]
        return list(index.get(value.casefold(), ()))

    def _index(self, record_id: str, row: Row, *, add: bool) -> None:
        for indexes, fold in ((self.ref_index, False), (self.key_index, True)):
            for slot, index in indexes.items():
                value = row[slot]
                if value is None:
                    continue
                key = value.casefold() if fold else value
                if add:
                    index.setdefault(key, {})[record_id] = None
                else:
                    bucket = index.get(key)
                    if bucket is not None:
                        bucket.pop(record_id, None)
                        if not bucket:
                            del index[key]

    def put(self, record_id: str, row: Row) -> Row | None:
        old = self.rows.get(record_id)
        if old is not None:
            self._index(record_id, old, add=False)
        self.rows[record_id] = row
        self._index(record_id, row, add=True)
        return old

    def remove(self, record_id: str) -> None:
        old = self.rows.pop(record_id, None)
        if old is not None:
            self._index(record_id, old, add=False)

    def as_dict(self, row: Row) -> dict[str, Any]:
        return dict(zip(self.slots, row, strict=True))


class Store:
    """All tables of one org plus an undo log for all-or-none writes."""

    def __init__(self, schema: dict[str, SObjectType]) -> None:
        self.schema = schema
        self.tables = {name: Table(sobject) for name, sobject in schema.items()}
        self.ids = IdFactory()
        self._undo: list[tuple[Table, str, Row | None]] | None = None

    def table(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def __getitem__(self, name: str) -> Table:
        return self.tables[name.lower()]

    def locate(self, record_id: str) -> tuple[Table, Row] | None:
        """The table and row of an 18-character id, whatever its type."""
        for sobject in type_for_id(self.schema, record_id):
            table = self.tables[sobject.name.lower()]
            row = table.rows.get(record_id)
            if row is not None:
                return table, row
        return None

    def new_id(self, table: Table) -> str:
        return self.ids.new(table.sobject.prefix)

    def put(self, table: Table, record_id: str, row: Row) -> None:
        old = table.put(record_id, row)
        if self._undo is not None:
            self._undo.append((table, record_id, old))

    def put_many(self, table: Table, rows: Iterable[tuple[str, Row]]) -> None:
        """Bulk load without undo (seeding)."""
        for record_id, row in rows:
            table.put(record_id, row)

    # -- transactions (collections with allOrNone=true) ------------------------------
    def begin(self) -> None:
        self._undo = []

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        undo, self._undo = self._undo or [], None
        for table, record_id, old in reversed(undo):
            if old is None:
                table.remove(record_id)
            else:
                table.put(record_id, old)
