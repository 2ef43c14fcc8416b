"""The prospect simulator (sandbox/prospects.py) on the HubSpot emulator's data.

Lost deal: a live deal whose `dealstage` is a closed-lost stage of its pipeline (closed, not
won: `stage_flags`), lost on its `closedate`'s day. Winback task: a live task with the task
key property set (`winback_key`, the emulator's `task_key_property`) associated with the deal;
subject `hs_task_subject`, due on `hs_timestamp`'s day, completed when `hs_task_status` is
COMPLETED (at `hs_task_completion_date`). Writes go through `ops` as admin writes, the way the
admin routes make them: a rep completing a task is `activities/complete`, a reopen is `PATCH
objects/deals/<id>` with the first open stage of the deal's pipeline, a new deal is a `POST
objects/deals` in that pipeline and stage, associated with the lost deal's company the way
seeding does it (type 5, deal_to_company primary); hs_lastmodifieddate takes the emulator
clock, so incremental syncs see the change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from sandbox.hubspot.errors import invalid
from sandbox.hubspot.ops import create_object, update_object
from sandbox.hubspot.schema import PIPELINES, STAGES, stage_flags
from sandbox.hubspot.store import Record
from sandbox.hubspot.values import iso_ms, parse_time
from sandbox.prospects import Guard, LostDeal, Simulator, TaskView, install

if TYPE_CHECKING:

    from sandbox.hubspot.emulator import HubSpotEmulator

DEAL_TO_COMPANY = 5  # the primary deal -> company association seeding makes


def _moment(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


def _day(text: str | None) -> date | None:
    moment = _moment(text)
    return moment.astimezone(UTC).date() if moment else None


class HubSpotProspects:
    """The simulator's `Crm` adapter; the caller (the simulator) holds the emulator lock."""

    def __init__(self, emu: HubSpotEmulator) -> None:
        self.emu = emu

    def data(self) -> object:
        return self.emu.store

    def lost_deals(self) -> list[LostDeal]:
        found = []
        for rec in self.emu.store.objects["deals"].values():
            closed, won = stage_flags(rec.props.get("dealstage"))
            lost_on = _day(rec.props.get("closedate"))
            if not rec.archived and closed and not won and lost_on is not None:
                found.append(LostDeal(str(rec.id), lost_on))
        return found

    def _task(self, rec: Record) -> TaskView | None:
        props = rec.props
        if rec.archived or not props.get(self.emu.options.task_key_property):
            return None
        done = None
        if props.get("hs_task_status") == "COMPLETED":
            done = _moment(props.get("hs_task_completion_date")) \
                or _moment(props.get("hs_lastmodifieddate"))
        return TaskView(str(rec.id), props.get("hs_task_subject", ""),
                        _day(props.get("hs_timestamp")), done, _moment(rec.created))

    def open_winback_tasks(self) -> list[TaskView]:
        tasks = self.emu.store.objects["tasks"].values()
        found = (self._task(rec) for rec in tasks)
        return [t for t in found if t is not None and t.completed_at is None]

    def winback_tasks(self, deal_id: str) -> list[TaskView]:
        tasks = self.emu.store.objects["tasks"]
        linked = self.emu.store.linked("deals", int(deal_id), "tasks")
        found = (self._task(tasks[i]) for i in linked)
        return [t for t in found if t is not None]

    def complete_task(self, task_id: str, at: datetime) -> None:
        # exactly what POST activities/complete {"id", "at"} writes
        rec = self.emu.store.get("tasks", task_id)
        if rec is not None:
            update_object(self.emu, rec, {"hs_task_status": "COMPLETED",
                                          "hs_task_completion_date": iso_ms(at)}, admin=True)

    def _deal(self, deal_id: str) -> tuple[Record, str, str]:
        """The deal, its pipeline and that pipeline's first open stage."""
        rec = self.emu.store.get("deals", deal_id)
        if rec is None:
            invalid(f"deal {deal_id} does not exist")
        known = STAGES.get(rec.props.get("dealstage", ""))
        pipeline = known[0] if known else PIPELINES[0]
        stage = next((s for s in pipeline.stages if not s.closed), None)
        if stage is None:
            invalid(f"pipeline {pipeline.id} has no open stage")
        return rec, pipeline.id, stage.id

    def reopen(self, deal_id: str) -> None:
        # what PATCH objects/deals/<id> {"properties": {"dealstage": ...}} writes
        rec, _, stage = self._deal(deal_id)
        update_object(self.emu, rec, {"dealstage": stage}, admin=True)

    def new_deal(self, deal_id: str, close_on: date) -> str | None:
        rec, pipeline, stage = self._deal(deal_id)
        companies = self.emu.store.linked("deals", rec.id, "companies")
        if not companies:
            return None
        company = next((c for c, kinds in companies.items() if DEAL_TO_COMPANY in kinds),
                       next(iter(companies)))
        props = {"dealname": f"{rec.props.get('dealname', 'Deal')} (reborn)",
                 "pipeline": pipeline, "dealstage": stage,
                 "closedate": iso_ms(datetime.combine(close_on, time(), tzinfo=UTC))}
        for name in ("hubspot_owner_id", "amount"):
            if rec.props.get(name):
                props[name] = rec.props[name]
        # what POST objects/deals {"properties", "associations": {"companies": [...]}} writes
        new = create_object(self.emu, "deals", props, None, admin=True)
        self.emu.store.link("deals", new.id, "companies", company, DEAL_TO_COMPANY)
        return str(new.id)


def register(emu: HubSpotEmulator, guard: Guard) -> Simulator:
    """The simulator on this emulator (sandbox/prospects.py `install`)."""
    return install(emu, HubSpotProspects(emu), guard)
