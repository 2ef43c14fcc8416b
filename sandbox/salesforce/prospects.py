"""The prospect simulator (sandbox/prospects.py) on the Salesforce emulator's data.

Lost deal: an Opportunity with IsClosed and not IsWon, lost on its CloseDate. Winback task: a
Task whose key (the Winback_Key__c External ID, or the `[wb:<key>]` Subject marker when the
org has no such field: `Dml.task_key`) is set, WhatId = the Opportunity; due on ActivityDate,
completed when IsClosed (at CompletedDateTime). Every write is an admin write through `Dml`,
the way the admin routes make them: a rep completing a task is `activities/complete` (the
org's closed TaskStatus, CompletedDateTime = the moment), a reopen is `PATCH
records/Opportunity/<id>` with the first open stage, a new deal is `POST records/Opportunity`
on the lost deal's account (same owner and amount, the first open stage); LastModifiedDate /
SystemModstamp take the emulator clock, so incremental syncs see the change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sandbox.prospects import Guard, LostDeal, Simulator, TaskView, install
from sandbox.salesforce.admin import picklist_closed
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.store import Table

if TYPE_CHECKING:

    from sandbox.salesforce.emulator import SalesforceEmulator


class SalesforceProspects:
    """The simulator's `Crm` adapter; the caller (the simulator) holds the emulator lock."""

    def __init__(self, emu: SalesforceEmulator) -> None:
        self.emu = emu

    def data(self) -> object:
        return self.emu.store

    def _opportunities(self) -> Table:
        return self.emu.store["Opportunity"]

    def lost_deals(self) -> list[LostDeal]:
        table = self._opportunities()
        closed, won, close = (table.slot(n) for n in ("IsClosed", "IsWon", "CloseDate"))
        return [LostDeal(record_id, row[close]) for record_id, row in table.live_rows()
                if row[closed] and not row[won] and isinstance(row[close], date)]

    def _tasks(self, ids: list[str] | None = None) -> list[TaskView]:
        """The winback tasks among the live Tasks (all, or those `ids`)."""
        table = self.emu.store["Task"]
        slot = table.slot
        keys = [f.name for f in table.sobject.external_id_fields()]
        subject, closed, due = slot("Subject"), slot("IsClosed"), slot("ActivityDate")
        found = []
        for record_id in table.rows if ids is None else ids:
            row = table.rows[record_id]
            fields = {name: row[slot(name)] for name in keys}
            if table.is_deleted(row) or not self.emu.dml.task_key(
                    table, {**fields, "Subject": row[subject]}):
                continue
            done = (row[slot("CompletedDateTime")] or row[slot("LastModifiedDate")]
                    if row[closed] else None)
            found.append(TaskView(record_id, str(row[subject] or ""), row[due], done,
                                  row[slot("CreatedDate")]))
        return found

    def open_winback_tasks(self) -> list[TaskView]:
        return [t for t in self._tasks() if t.completed_at is None]

    def winback_tasks(self, deal_id: str) -> list[TaskView]:
        return self._tasks(self.emu.store["Task"].children("WhatId", deal_id))

    def complete_task(self, task_id: str, at: datetime) -> None:
        # exactly what POST activities/complete {"id", "at"} writes
        self.emu.dml.update(self.emu.store["Task"], task_id, {
            "Status": picklist_closed(self.emu.store), "CompletedDateTime": at.isoformat()},
            self.emu.default_user_id, admin=True)

    def _open_stage(self) -> str:
        """The org's first active open stage (by sort order), as StageName takes it."""
        table = self.emu.store["OpportunityStage"]
        slot = table.slot
        rows = sorted((r for r in table.rows.values()
                       if r[slot("IsActive")] and not r[slot("IsClosed")]),
                      key=lambda r: r[slot("SortOrder")] or 0)
        if not rows:
            raise SFError.one(400, "NO_OPEN_STAGE", "the org has no active open stage")
        return str(rows[0][slot("ApiName")] or rows[0][slot("MasterLabel")])

    def reopen(self, deal_id: str) -> None:
        # what PATCH records/Opportunity/<id> {"StageName": ...} writes
        self.emu.dml.update(self._opportunities(), deal_id, {"StageName": self._open_stage()},
                            self.emu.default_user_id, admin=True)

    def new_deal(self, deal_id: str, close_on: date) -> str | None:
        table = self._opportunities()
        row = table.rows[deal_id]
        account = row[table.slot("AccountId")]
        if not account:
            return None
        record: dict[str, Any] = {
            "Name": f"{row[table.slot('Name')]} (reborn)", "AccountId": account,
            "StageName": self._open_stage(), "CloseDate": close_on.isoformat()}
        for name in ("OwnerId", "Amount"):
            if row[table.slot(name)] is not None:
                record[name] = row[table.slot(name)]
        # what POST records/Opportunity writes
        return self.emu.dml.create(table, record, self.emu.default_user_id, admin=True)


def register_prospects(emu: SalesforceEmulator, guard: Guard) -> Simulator:
    """The simulator on this emulator (sandbox/prospects.py `install`)."""
    return install(emu, SalesforceProspects(emu), guard)
