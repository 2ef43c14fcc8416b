"""Writes: create, update, soft delete and upsert, with Salesforce's defaults and derived fields.

Derived on every write (reference §1, §3.1): Opportunity IsClosed/IsWon/ForecastCategory from
the OpportunityStage table (Probability and ForecastCategoryName reset to the stage defaults
when the stage changes); Task IsClosed/CompletedDateTime from TaskStatus, IsHighPriority from
TaskPriority, AccountId from WhatId (or the WhoId contact); Event start/end/duration and
AccountId (sandbox.salesforce.activities); Name of people; one primary
OpportunityContactRole per opportunity. CreatedDate/LastModifiedDate/SystemModstamp come from
the emulator clock. Admin writes skip permission checks and may set system fields.

Every API write of a Task is also entered in the emulator's write log per task key (the
Task's External ID value, else the `[wb:<key>]` marker at the end of its Subject): a test's
record of what reached the org, not something Salesforce keeps. Admin writes are not logged.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.salesforce.activities import account_of, check_lead_links, derive_event
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.ids import normalize_id
from sandbox.salesforce.schema import SYSTEM_FIELDS
from sandbox.salesforce.store import Draft, Row, Store, Table
from sandbox.salesforce.validation import (
    check_required,
    check_values,
    fail,
    picklist_default,
    picklist_row,
    prepare,
)
from sandbox.writelog import WriteLog

DEFAULTS: dict[str, dict[str, Any]] = {
    "Task": {"TaskSubtype": "Task", "IsArchived": False},  # Status, Priority: IsDefault rows
    "Event": {"EventSubtype": "Event", "IsArchived": False, "IsChild": False, "ShowAs": "Busy"},
    "Lead": {"Status": "Open - Not Contacted"},
    "User": {"IsActive": True, "TimeZoneSidKey": "America/Los_Angeles"},
    "OpportunityStage": {"IsActive": True},
}
# Picklists whose default is the IsDefault row of their metadata table (TaskStatus, ...).
TABLE_DEFAULTS: dict[str, tuple[str, ...]] = {"Task": ("Status", "Priority")}
MARKER = re.compile(r"\[wb:([^\]]+)\]")


@dataclass
class Locks:
    """Injected UNABLE_TO_LOCK_ROW: locked ids, a number of next writes, or a rate."""

    rng: random.Random
    ids: set[str] = field(default_factory=set)
    fail_next: int = 0
    rate: float = 0.0

    def check(self, record_ids: list[str | None]) -> None:
        ids = [i for i in record_ids if i]
        locked = next((i for i in ids if i in self.ids), None)
        if locked is None and self.fail_next > 0:
            self.fail_next -= 1
            locked = ids[0] if ids else "unknown"
        if locked is None and self.rate and self.rng.random() < self.rate:
            locked = ids[0] if ids else "unknown"
        if locked is not None:
            raise fail("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record "
                       f"or 1 records: {locked}")

    def clear(self) -> None:
        self.ids.clear()
        self.fail_next = 0
        self.rate = 0.0


class Dml:
    def __init__(self, store: Store, clock: Callable[[], datetime], locks: Locks,
                 writes: WriteLog | None = None) -> None:
        self.store = store
        self.clock = clock
        self.locks = locks
        self.writes = writes if writes is not None else WriteLog()

    # -- the write log --------------------------------------------------------------------
    def task_key(self, table: Table, values: Mapping[str, Any]) -> str | None:
        """The task key a Task's fields carry (External ID value, else Subject marker)."""
        if table.sobject.name != "Task":
            return None
        lower = {str(k).lower(): v for k, v in values.items()}
        for f in table.sobject.external_id_fields():
            value = lower.get(f.name.lower())
            if value:
                return str(value)
        found = MARKER.findall(str(lower.get("subject") or ""))
        return found[-1] if found else None

    def _row_key(self, table: Table, record_id: str) -> str | None:
        row = table.rows.get(record_id)
        if row is None or table.sobject.name != "Task":
            return None
        return self.task_key(table, {n: row[table.slot(n)] for n in table.slots})

    def _log_failure(self, key: str | None) -> None:
        """A refused create/upsert: a re-send when the key already had a task."""
        if key:
            self.writes.record(key, "resent" if self.writes.count(key, "created") else "refused")

    # -- lookups ------------------------------------------------------------------------
    def find(self, table: Table, record_id: str, *, allow_deleted: bool = False) -> tuple[str, Row]:
        normal = normalize_id(record_id)
        row = table.rows.get(normal) if normal else None
        if normal is None or row is None:
            if normal is None or not normal.startswith(table.sobject.prefix):
                raise SFError.one(404, "NOT_FOUND", "Provided external ID field does not exist "
                                  f"or is not accessible: {record_id}")
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        if table.is_deleted(row) and not allow_deleted:
            raise SFError.one(404, "ENTITY_IS_DELETED", "entity is deleted")
        return normal, row

    # -- operations ---------------------------------------------------------------------
    def create(self, table: Table, data: dict[str, Any], actor: str, *,
               admin: bool = False) -> str:
        if admin:
            return self._create(table, data, actor, admin=True)
        try:
            record_id = self._create(table, data, actor)
        except SFError:
            self._log_failure(self.task_key(table, data))
            raise
        self.writes.record(self._row_key(table, record_id), "created")
        return record_id

    def _create(self, table: Table, data: dict[str, Any], actor: str, *,
                admin: bool = False) -> str:
        sobject = table.sobject
        if not sobject.createable and not admin:
            raise fail("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be inserted: "
                       f"{sobject.name}")
        values = prepare(table, data, creating=True, admin=admin)
        record_id = self.store.new_id(table)
        row = table.blank()
        row[0] = record_id
        for f in sobject.fields:
            if f.type == "boolean":
                row[table.slot(f.name)] = False
        for name, value in DEFAULTS.get(sobject.name, {}).items():
            row[table.slot(name)] = value
        for name in TABLE_DEFAULTS.get(sobject.name, ()):  # the org's IsDefault value
            field = sobject.field(name)
            default = picklist_default(self.store, sobject, field) if field else None
            if default is not None:
                row[table.slot(name)] = default
        if "OwnerId" in table.slots:
            row[table.slot("OwnerId")] = actor
        for name, value in values.items():
            row[table.slot(name)] = value
        self._stamp(table, row, values, actor, creating=True)
        check_required(table, row)
        check_values(self.store, table, row, [n for n in values if n not in SYSTEM_FIELDS],
                     admin=admin)
        self._derive(table, row, None, values)
        self._unique(table, record_id, row)
        if not admin:
            self.locks.check(self._parents(table, row))
        self.store.put(table, record_id, row)
        self._after(table, record_id, row, actor)
        return record_id

    def update(self, table: Table, record_id: str, data: dict[str, Any], actor: str, *,
               admin: bool = False) -> str:
        if admin:
            return self._update(table, record_id, data, actor, admin=True)
        normal = normalize_id(record_id) or record_id
        key = self._row_key(table, normal)
        try:
            updated = self._update(table, record_id, data, actor)
        except SFError:
            if key:
                self.writes.record(key, "refused")
            raise
        self.writes.record(key, "updated")
        return updated

    def _update(self, table: Table, record_id: str, data: dict[str, Any], actor: str, *,
                admin: bool = False) -> str:
        sobject = table.sobject
        if not sobject.updateable and not admin:
            raise fail("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be updated: "
                       f"{sobject.name}")
        record_id, old = self.find(table, record_id, allow_deleted=admin)
        values = prepare(table, data, creating=False, admin=admin)
        row = list(old)
        for name, value in values.items():
            row[table.slot(name)] = value
        self._stamp(table, row, values, actor, creating=False)
        check_required(table, row)
        check_values(self.store, table, row, [n for n in values if n not in SYSTEM_FIELDS],
                     admin=admin)
        self._derive(table, row, old, values)
        self._unique(table, record_id, row)
        if not admin:
            self.locks.check([record_id, *self._parents(table, row)])
        self.store.put(table, record_id, row)
        self._after(table, record_id, row, actor)
        return record_id

    def delete(self, table: Table, record_id: str, actor: str, *, admin: bool = False) -> str:
        if not table.sobject.deletable or table.deleted_slot is None:
            raise fail("INVALID_TYPE_FOR_OPERATION", f"entity type cannot be deleted: "
                       f"{table.sobject.name}")
        record_id, row = self.find(table, record_id)
        if not admin:
            self.locks.check([record_id])
        self._soft_delete(table, record_id, row, actor)
        return record_id

    def upsert(self, table: Table, field_name: str, value: str, data: dict[str, Any],
               actor: str, *, in_body: bool = False) -> tuple[str, bool]:
        """Create or update by external id. `in_body`: the key travels in `data` (collections)."""
        key = table.sobject.field(field_name)
        if key is None or not (key.external_id or key.name == "Id"):
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        body = {k: v for k, v in data.items() if k.lower() != key.name.lower()}
        if not in_body and len(body) != len(data):
            raise fail("INVALID_FIELD", f"The {key.name} field should not be specified in the "
                       "sobject data.", key.name)
        if key.name == "Id":
            normal = normalize_id(value) or value
            matches = [normal] if normal in table.rows else []
        else:
            matches = self.matches_by_key(table, key.name, value)
        if len(matches) > 1:
            raise SFError(300, [])  # the route lists the matching records
        if matches:
            logged = self._row_key(table, matches[0])
            try:
                record_id = self._update(table, matches[0], body, actor)
            finally:  # a write for a key that has its task, applied or refused: a re-send
                self.writes.record(logged, "resent")
            return record_id, False
        if key.name == "Id":
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        return self.create(table, {**body, key.name: value}, actor), True

    def matches_by_key(self, table: Table, field_name: str, value: str) -> list[str]:
        return [i for i in table.by_key(field_name, value)
                if not table.is_deleted(table.rows[i])]

    # -- internals ----------------------------------------------------------------------
    def _stamp(self, table: Table, row: Draft, values: dict[str, Any], actor: str, *,
               creating: bool) -> None:
        now = self.clock()
        if creating:
            row[table.slot("CreatedById")] = values.get("CreatedById", actor)
            row[table.slot("CreatedDate")] = values.get("CreatedDate", now)
        row[table.slot("LastModifiedById")] = values.get("LastModifiedById", actor)
        modified = values.get("LastModifiedDate", now)
        row[table.slot("LastModifiedDate")] = modified
        stamp = values.get("SystemModstamp", modified if "LastModifiedDate" in values else now)
        row[table.slot("SystemModstamp")] = max(stamp, modified)

    def _parents(self, table: Table, row: Row) -> list[str | None]:
        return [row[table.slot(n)] for n in ("WhatId", "WhoId", "OpportunityId")
                if n in table.slots]

    def _unique(self, table: Table, record_id: str, row: Row) -> None:
        for f in table.sobject.fields:
            if not f.unique or f.type != "string":
                continue
            value = row[table.slot(f.name)]
            if value is None or f.name not in table.slots:
                continue
            if table.slot(f.name) not in table.key_index:
                continue
            for other in table.by_key(f.name, value):
                if other != record_id and not table.is_deleted(table.rows[other]):
                    raise fail("DUPLICATE_VALUE", f"duplicate value found: {f.name} duplicates "
                               f"value on record with id: {other}", f.name)

    def _derive(self, table: Table, row: Draft, old: Row | None, values: dict[str, Any]) -> None:
        name = table.sobject.name
        slot = table.slot
        if "Name" in table.slots and "LastName" in table.slots:
            parts = (row[slot("FirstName")], row[slot("LastName")])
            row[slot("Name")] = " ".join(p for p in parts if p)
        if name == "Opportunity":
            self._derive_opportunity(table, row, old, values)
        elif name == "Task":
            self._derive_task(table, row, old, values)
        elif name == "Event":
            derive_event(self.store, table, row)

    def _lookup_row(self, table_name: str, label: str) -> Row | None:
        return picklist_row(self.store, table_name, label)

    def _derive_opportunity(self, table: Table, row: Draft, old: Row | None,
                            values: dict[str, Any]) -> None:
        slot = table.slot
        stage_table = self.store["OpportunityStage"]
        stage = self._lookup_row("OpportunityStage", row[slot("StageName")])
        if stage is None:
            return
        get = stage_table.slot
        row[slot("IsClosed")] = stage[get("IsClosed")]
        row[slot("IsWon")] = stage[get("IsWon")]
        changed = old is None or old[slot("StageName")] != row[slot("StageName")]
        if changed and "Probability" not in values:
            row[slot("Probability")] = float(stage[get("DefaultProbability")])
        if changed and "ForecastCategoryName" not in values:
            row[slot("ForecastCategoryName")] = stage[get("ForecastCategoryName")]
        category = row[slot("ForecastCategoryName")]
        row[slot("ForecastCategory")] = {"Best Case": "BestCase", "Commit": "Forecast"}.get(
            category, category)

    def _derive_task(self, table: Table, row: Draft, old: Row | None,
                     values: dict[str, Any]) -> None:
        slot = table.slot
        status = self._lookup_row("TaskStatus", row[slot("Status")])
        closed = bool(status and status[self.store["TaskStatus"].slot("IsClosed")])
        row[slot("IsClosed")] = closed
        if "CompletedDateTime" in values and closed:
            pass  # an admin write (a rep completing it at a given time)
        elif closed and (old is None or not old[slot("IsClosed")]):
            row[slot("CompletedDateTime")] = self.clock()
        elif not closed:
            row[slot("CompletedDateTime")] = None
        priority = self._lookup_row("TaskPriority", row[slot("Priority")])
        row[slot("IsHighPriority")] = bool(
            priority and priority[self.store["TaskPriority"].slot("IsHighPriority")])
        check_lead_links(row, table, "task")
        row[slot("AccountId")] = account_of(self.store, row[slot("WhatId")], row[slot("WhoId")])

    def _after(self, table: Table, record_id: str, row: Row, actor: str) -> None:
        if table.sobject.name != "OpportunityContactRole" or not row[table.slot("IsPrimary")]:
            return
        slot = table.slot("IsPrimary")
        for other in table.children("OpportunityId", row[table.slot("OpportunityId")]):
            sibling = table.rows[other]
            if other != record_id and sibling[slot]:
                changed = list(sibling)
                changed[slot] = False
                self._stamp(table, changed, {}, actor, creating=False)
                self.store.put(table, other, changed)

    def _soft_delete(self, table: Table, record_id: str, row: Row, actor: str) -> None:
        deleted = list(row)
        deleted[table.slot("IsDeleted")] = True
        self._stamp(table, deleted, {}, actor, creating=False)
        self.store.put(table, record_id, deleted)
        for relation in table.sobject.children:
            if not relation.cascade_delete:
                continue
            child = self.store[relation.child]
            for child_id in child.children(relation.field, record_id):
                child_row = child.rows[child_id]
                if not child.is_deleted(child_row):
                    self._soft_delete(child, child_id, child_row, actor)
