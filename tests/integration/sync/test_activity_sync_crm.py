"""The sync with activity rules against both emulators through the real SDKs (issue 13): a rep
completes winback's task in the CRM and the step `after` it is written from that day; a rep
logs a call and the `skip_if` touch of that deal is skipped on its create date, recorded with
the call, while the other deals' touches are written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.runner import Sandbox, hubspot_connection, salesforce_connection, start_sandbox
from tests.integration.sync.configs import activity_config
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import enrollment, skip_decision, task
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

CONFIG = activity_config(
    "{id: pm, at: 0d, channel: call}",
    "{id: follow, at: 0d, after: pm}",
    "{id: touch, at: 20d, skip_if: {activity: [call], within: 14d}}",
)
CONNECTIONS = {"salesforce": "sf", "hubspot": "hs"}


class Crms:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.box: Sandbox = start_sandbox(seed=8, ca_dir=tmp_path / "ca",
                                          hubspot_options={"burst": 100_000,
                                                           "search_per_second": 1000})
        self.box.seed(12, 8, days_back=6, owners=4, inactive_owners=0)
        sf_fallback, hs_fallback = self.box.active_owners()
        for key, value in self.box.environment().items():
            monkeypatch.setenv(key, value)
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        monkeypatch.setenv("WINBACK_DATABASE_URL", url)
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        path = tmp_path / "winback.yaml"
        path.write_text(CONFIG + salesforce_connection("sf", fallback=sf_fallback)
                        + hubspot_connection("hs", fallback=hs_fallback))
        self.offset = timedelta(0)
        self.service: Service = build_service(load_config(path), path, clock=self.now)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, days: float) -> None:
        self.offset += timedelta(days=days)
        for crm in CONNECTIONS:
            self.box.admin(crm, "POST", "clock", {"offset_seconds": self.offset.total_seconds()})

    def tick(self) -> None:
        for name, ctx in self.service.contexts.items():
            result = run_tick(ctx, ignore_schedule=True)
            assert result.result == "ok", (name, result)

    def rows(self, query: Any) -> list[Any]:
        with self.service.ledger.engine.connect() as conn:
            return list(conn.execute(query))

    def close(self) -> None:
        self.service.close()
        self.box.stop()


@pytest.fixture
def crms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Crms]:
    world = Crms(tmp_path, monkeypatch)
    yield world
    world.close()


def keys_in(crms: Crms, crm: str) -> set[str]:
    if crm == "salesforce":
        return {str(t.get("Winback_Key__c")) for t in crms.box.tasks(crm)}
    return {str((t.get("properties") or {}).get("winback_key")) for t in crms.box.tasks(crm)}


def test_completion_and_a_logged_call_on_both_crms(crms: Crms) -> None:
    crms.tick()  # first sync: pm written for every tracked deal, follow waiting
    for crm, name in CONNECTIONS.items():
        deals = [str(r.deal_id) for r in crms.rows(select(enrollment.c.deal_id).where(
            enrollment.c.connection == name, enrollment.c.status == "active")
            .order_by(enrollment.c.deal_id))]
        assert len(deals) >= 3, f"{crm}: too few lost deals seeded ({deals})"
        done, called = deals[0], deals[1]
        pm = crms.rows(select(task.c.crm_id).where(task.c.connection == name,
                                                   task.c.deal_id == done, task.c.step == "pm"))
        assert pm and pm[0].crm_id, f"{crm}: pm not written"
        crms.box.admin(crm, "POST", "activities/complete", {"id": pm[0].crm_id})
        setattr(crms, f"{crm}_deals", (done, called, deals[2:]))
    crms.tick()  # the completion: follow written from today
    for crm, name in CONNECTIONS.items():
        done, _, _ = getattr(crms, f"{crm}_deals")
        follow = crms.rows(select(task.c.key, task.c.status).where(
            task.c.connection == name, task.c.deal_id == done, task.c.step == "follow"))
        assert [r.status for r in follow] == ["written"], f"{crm}: {follow}"
        assert follow[0].key in keys_in(crms, crm)
    crms.advance(days=14)  # every touch's create date has come (due day 0 + 20)
    for crm in CONNECTIONS:  # a rep logs a call now: within 14 days before each due date
        _, called, _ = getattr(crms, f"{crm}_deals")
        crms.box.admin(crm, "POST", "activities", {
            "kind": "call", **({"what": called} if crm == "salesforce" else {"deal": called}),
            "subject": "Spoke with them"})
    crms.tick()  # read in the same tick as the decision, before anything is written
    for crm, name in CONNECTIONS.items():
        _, called, others = getattr(crms, f"{crm}_deals")
        account = {str(r.deal_id): r.account_id for r in crms.rows(select(
            enrollment.c.deal_id, enrollment.c.account_id).where(
            enrollment.c.connection == name))}
        # The call is on the deal, and (Salesforce derives Task.AccountId from an
        # opportunity's WhatId) on its account: that account's other deals skip too.
        decided = crms.rows(select(skip_decision).where(skip_decision.c.connection == name))
        skipped = {str(r.deal_id) for r in decided}
        assert called in skipped, f"{crm}: {decided}"
        assert {(r.step, r.activity_kind) for r in decided} == {("touch", "call")}
        assert all(d == called or account[d] == account[called] for d in skipped)
        touches = {str(r.deal_id): (r.status, r.key) for r in crms.rows(select(
            task.c.deal_id, task.c.status, task.c.key).where(
            task.c.connection == name, task.c.step == "touch"))}
        in_crm = keys_in(crms, crm)
        assert not any(touches[d][1] in in_crm for d in skipped if d in touches)
        elsewhere = [d for d in others if account[d] != account[called]]
        assert elsewhere and all(touches[d][0] == "written" and touches[d][1] in in_crm
                                 for d in elsewhere), f"{crm}: {touches}"
