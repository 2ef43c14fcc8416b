"""A HubSpot activity deleted after winback read it no longer skips a task (issue 13).

HubSpot search never returns an archived engagement, so the activity read cannot see a call
deleted after it was read. On the HubSpot emulator through the real SDK: two calls are read,
one is deleted in HubSpot, then the touches' create date comes: the deal whose call is gone
gets its task written (the ledger flags the call deleted), the deal whose call remains is
skipped with it. The idle tick after makes no confirmation call.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.runner import Sandbox, hubspot_connection, start_sandbox
from tests.integration.sync.configs import activity_config
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.records import EnrollmentStatus, TaskStatus
from worker.ledger.schema import activity, enrollment, skip_decision, task
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

CONFIG = activity_config(
    "{id: touch, at: 30d, skip_if: {activity: [call], within: 21d}}",
)


class HubSpot:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.box: Sandbox = start_sandbox(seed=5, ca_dir=tmp_path / "ca",
                                          hubspot_options={"burst": 100_000,
                                                           "search_per_second": 1000})
        self.box.seed(10, 5, days_back=6, owners=3, inactive_owners=0)
        _, fallback = self.box.active_owners()
        for key, value in self.box.environment().items():
            monkeypatch.setenv(key, value)
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        monkeypatch.setenv("WINBACK_DATABASE_URL", url)
        path = tmp_path / "winback.yaml"
        path.write_text(CONFIG + hubspot_connection("hs", fallback=fallback))
        self.offset = timedelta(0)
        self.service: Service = build_service(load_config(path), path, clock=self.now)
        self.ctx = self.service.contexts["hs"]
        self.asked: list[set[str]] = []  # the ids each confirmation asked HubSpot for
        connector: Any = self.ctx.connector
        confirm = connector.missing_activities

        def spy(ids: Any) -> set[str]:
            self.asked.append(set(ids))
            return set(confirm(ids))

        monkeypatch.setattr(connector, "missing_activities", spy)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, days: float) -> None:
        self.offset += timedelta(days=days)
        self.box.admin("hubspot", "POST", "clock", {"offset_seconds": self.offset.total_seconds()})

    def tick(self) -> int:
        result = run_tick(self.ctx, ignore_schedule=True)
        assert result.result == "ok", result
        return result.api_calls

    def rows(self, query: Any) -> list[Any]:
        with self.service.ledger.engine.connect() as conn:
            return list(conn.execute(query))

    def touches(self) -> dict[str, tuple[str, str]]:
        return {str(r.deal_id): (str(r.status), str(r.key)) for r in self.rows(select(
            task.c.deal_id, task.c.status, task.c.key).where(task.c.step == "touch"))}

    def keys_in_crm(self) -> set[str]:
        return {str((t.get("properties") or {}).get("winback_key"))
                for t in self.box.tasks("hubspot")}

    def close(self) -> None:
        self.service.close()
        self.box.stop()


@pytest.fixture
def hubspot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpot]:
    world = HubSpot(tmp_path, monkeypatch)
    yield world
    world.close()


def test_a_call_deleted_after_it_was_read_skips_nothing(hubspot: HubSpot) -> None:
    hubspot.tick()  # enrolls the lost deals: each touch due day 0 + 30
    deals = [str(r.deal_id) for r in hubspot.rows(select(enrollment.c.deal_id).where(
        enrollment.c.status == EnrollmentStatus.ACTIVE).order_by(enrollment.c.deal_id))]
    assert len(deals) >= 3, f"too few lost deals seeded ({deals})"
    deleted_on, kept_on, others = deals[0], deals[1], deals[2:]
    hubspot.advance(days=10)  # within 21 days before every due date, before any create date
    calls = {deal: str(hubspot.box.admin("hubspot", "POST", "activities", {
        "kind": "call", "deal": deal, "subject": "Spoke with them"})["id"])
        for deal in (deleted_on, kept_on)}
    hubspot.tick()  # both calls read and kept in the ledger; no touch is due to be written yet
    assert hubspot.asked == []  # no decision pending: nothing asked
    stored = {str(r.id): bool(r.deleted) for r in hubspot.rows(select(activity))}
    assert stored == {calls[deleted_on]: False, calls[kept_on]: False}
    assert {s for s, _ in hubspot.touches().values()} == {TaskStatus.PLANNED}
    hubspot.box.admin("hubspot", "DELETE", f"objects/calls/{calls[deleted_on]}")  # a rep

    hubspot.advance(days=16)  # every touch's create date has come (not yet past grace)
    hubspot.tick()
    assert hubspot.asked == [{calls[deleted_on], calls[kept_on]}]  # one batch read of calls
    touches, in_crm = hubspot.touches(), hubspot.keys_in_crm()
    assert touches[deleted_on][0] == TaskStatus.WRITTEN and touches[deleted_on][1] in in_crm
    assert touches[kept_on][0] == TaskStatus.SKIPPED and touches[kept_on][1] not in in_crm
    decided = hubspot.rows(select(skip_decision))
    assert [(str(r.deal_id), str(r.activity_id)) for r in decided] == [
        (kept_on, calls[kept_on])]
    assert all(touches[d][0] == TaskStatus.WRITTEN and touches[d][1] in in_crm
               for d in others), touches
    stored = {str(r.id): bool(r.deleted) for r in hubspot.rows(select(activity))}
    assert stored == {calls[deleted_on]: True, calls[kept_on]: False}

    idle = hubspot.tick()  # nothing pending: no batch read, the idle budget
    assert hubspot.asked == [{calls[deleted_on], calls[kept_on]}] and idle <= 6, idle
