"""`winback plan CONFIG --diff`: what a new configuration would change in the ledger's
in-flight tasks (added, moved, dropped), before it is deployed. Written tasks never change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from connectors.models import Deal
from worker.cadence.engine import Planner
from worker.ledger.schema import OPEN_STATUSES, enrollment, task
from worker.ledger.store import Ledger
from worker.settings.models import Config


@dataclass(frozen=True)
class Change:
    connection: str
    deal_id: str
    change: str  # added | moved | dropped
    cadence: str
    step: str
    occurrence: int
    contact_id: str | None
    due_before: date | None
    due_after: date | None
    key: str

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["due_before"] = self.due_before.isoformat() if self.due_before else None
        out["due_after"] = self.due_after.isoformat() if self.due_after else None
        return out


def diff(config: Config, ledger: Ledger, now: datetime) -> list[Change]:
    changes: list[Change] = []
    with ledger.engine.connect() as conn:
        for settings in config.connections:
            planner = Planner(config, settings.name)
            enrollments = conn.execute(select(enrollment).where(
                enrollment.c.connection == settings.name,
                enrollment.c.status.in_(("active", "unmatched"))))
            for row in enrollments:
                deal = Deal.model_validate(row.deal_json)
                plan = planner.plan(deal, now, cycle=int(row.cycle))
                stored = {t.key: t for t in conn.execute(select(task).where(
                    task.c.connection == settings.name, task.c.deal_id == row.deal_id))}
                planned = {t.key: t for t in plan.tasks}
                for key, new in planned.items():
                    old = stored.get(key)
                    if old is None or (old.status == "cancelled"
                                       and old.cancel_reason == "replanned"):
                        changes.append(Change(settings.name, row.deal_id, "added", new.cadence,
                                              new.step, new.occurrence, new.contact_id, None,
                                              new.due_date, key))
                    elif old.status in OPEN_STATUSES and old.due_date != new.due_date:
                        changes.append(Change(settings.name, row.deal_id, "moved", new.cadence,
                                              new.step, new.occurrence, new.contact_id,
                                              old.due_date, new.due_date, key))
                for key, old in stored.items():
                    if key not in planned and old.status in OPEN_STATUSES \
                            and old.cadence != "reborn":
                        changes.append(Change(settings.name, row.deal_id, "dropped",
                                              old.cadence, old.step, old.occurrence,
                                              old.contact_id, old.due_date, None, key))
    return changes
