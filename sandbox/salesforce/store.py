"""In-memory tables, compact enough for a million deals.

A row is a tuple in the field order of its sObject type (no per-row dict), values are native
Python types (str, bool, float, int, date, aware datetime, None). Writes build a list (a
`Draft`) and store it as a new tuple, so an undo log of old rows gives allOrNone transactions
for free.
Indexes: lookup fields flagged `indexed` (parent id -> child ids) and external-id fields
(case-folded value -> ids). Callers hold the emulator lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sandbox.salesforce.ids import IdFactory
from sandbox.salesforce.schema import SObjectType, type_for_id

Row = Sequence[Any]  # what readers take: a stored tuple or a draft list
Stored = tuple[Any, ...]
Draft = list[Any]
Bucket = str | list[str]


def _ids(bucket: Bucket | None) -> list[str]:
    if bucket is None:
        return []
    return [bucket] if isinstance(bucket, str) else list(bucket)


class Table:
    def __init__(self, sobject: SObjectType) -> None:
        self.sobject = sobject
        self.slots: dict[str, int] = {f.name: i for i, f in enumerate(sobject.fields)}
        self.rows: dict[str, Stored] = {}
        self.deleted_slot = self.slots.get("IsDeleted")
        # parent id (or case-folded key) -> one id, or a list of ids once there are several:
        # most buckets hold a single child, and a bare string saves a list per row
        self.ref_index: dict[int, dict[str, Bucket]] = {
            self.slots[f.name]: {} for f in sobject.fields if f.indexed and f.type == "reference"}
        self.key_index: dict[int, dict[str, Bucket]] = {
            self.slots[f.name]: {} for f in sobject.fields if f.external_id}

    def slot(self, field_name: str) -> int:
        return self.slots[field_name]

    def blank(self) -> Draft:
        return [None] * len(self.slots)

    def is_deleted(self, row: Row) -> bool:
        return self.deleted_slot is not None and bool(row[self.deleted_slot])

    def live_rows(self) -> Iterator[tuple[str, Stored]]:
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
        return _ids(index.get(parent_id))

    def by_key(self, field_name: str, value: str) -> list[str]:
        index = self.key_index[self.slots[field_name]]
        return _ids(index.get(value.casefold()))

    def _index(self, record_id: str, row: Row, *, add: bool) -> None:
        for indexes, fold in ((self.ref_index, False), (self.key_index, True)):
            for slot, index in indexes.items():
                value = row[slot]
                if value is None:
                    continue
                key = value.casefold() if fold else value
                bucket = index.get(key)
                if add:
                    if bucket is None:
                        index[key] = record_id
                    elif isinstance(bucket, str):
                        index[key] = [bucket, record_id]
                    else:
                        bucket.append(record_id)
                elif bucket == record_id:
                    del index[key]
                elif isinstance(bucket, list) and record_id in bucket:
                    bucket.remove(record_id)
                    if len(bucket) == 1:
                        index[key] = bucket[0]

    def put(self, record_id: str, row: Row) -> Stored | None:
        stored = row if isinstance(row, tuple) else tuple(row)
        old = self.rows.get(record_id)
        if old is not None:
            if all(old[s] == stored[s] for s in (*self.ref_index, *self.key_index)):
                self.rows[record_id] = stored  # indexed values unchanged: keep the buckets
                return old
            self._index(record_id, old, add=False)
        self.rows[record_id] = stored
        self._index(record_id, stored, add=True)
        return old

    def remove(self, record_id: str) -> None:
        old = self.rows.pop(record_id, None)
        if old is not None:
            self._index(record_id, old, add=False)


class Store:
    """All tables of one org plus an undo log for all-or-none writes."""

    def __init__(self, schema: dict[str, SObjectType]) -> None:
        self.schema = schema
        self.tables = {name: Table(sobject) for name, sobject in schema.items()}
        self.ids = IdFactory()
        self._undo: list[tuple[Table, str, Stored | None]] | None = None

    def table(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def __getitem__(self, name: str) -> Table:
        return self.tables[name.lower()]

    def locate(self, record_id: str) -> tuple[Table, Stored] | None:
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
