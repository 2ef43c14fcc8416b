"""Issue 14's acceptance test of the per-owner daily cap: 40 deals lost in one week by one
owner, with a cap of 8, through the real worker against both CRM emulators. No day of that
owner gets more than 8 winback tasks in the CRM, nothing is skipped that grace left room for,
no task is written twice; and the same run on two replicas sharing a PostgreSQL ledger gives
the same tasks as one replica on SQLite."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import pytest
from sqlalchemy import select

from sandbox.runner import Sandbox, hubspot_connection, salesforce_connection, start_sandbox
from tests.acceptance.test_year import due_of, key_of, owner_of
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.records import CancelReason, TaskStatus
from worker.ledger.schema import task
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

CAP = 8
US_HOLIDAYS = holidays.country_holidays("US")  # (the one owner: New York, US, in both CRMs)
CONFIG = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  lead_time: 7d
  grace: 7d
  horizon: 3y
  max_tasks_per_owner_per_day: 8
connections:
"""
DAYS, EVERY = 20, 4  # simulated days, a tick every EVERY days (the post-mortems are at 14d)

Tasks = dict[str, set[tuple[str, str, date]]]  # crm -> {(key, owner, due date)}


class Run:
    """One sandbox seeded with the 40 deals, a ledger, and `replicas` services over it."""

    def __init__(self, tmp: Path, url: str, monkeypatch: pytest.MonkeyPatch, now: str,
                 replicas: int) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.box: Sandbox = start_sandbox(
            seed=7, ca_dir=tmp / "ca", hubspot_options={"burst": 100_000,
                                                        "search_per_second": 1000})
        self.box.seed(40, 7, now=now, days_back=6, owners=1, inactive_owners=0,
                      lost_share=1.0, won_share=0.0)
        for key, value in self.box.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("WINBACK_DATABASE_URL", url)
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        path = tmp / "winback.yaml"
        path.write_text(CONFIG + salesforce_connection("acme-sf") + hubspot_connection("acme-hs"))
        self.offset = timedelta(0)
        self.frozen: datetime | None = None
        config = load_config(path)
        self.services: list[Service] = [build_service(config, path, clock=self.now)
                                        for _ in range(replicas)]

    def now(self) -> datetime:
        return self.frozen or datetime.now(UTC) + self.offset

    def simulate(self) -> None:
        """Tick every EVERY days for DAYS days; each replica in turn (then once more, the next
        replica re-running the same day: a rerun must change nothing)."""
        for step in range(DAYS // EVERY + 1):
            for turn in range(len(self.services)):
                service = self.services[(step + turn) % len(self.services)]
                self.frozen = datetime.now(UTC) + self.offset
                try:
                    for name, ctx in service.contexts.items():
                        result = run_tick(ctx, ignore_schedule=True)
                        assert result.result == "ok", (name, result)
                finally:
                    self.frozen = None
            self.offset += timedelta(days=EVERY)
            for crm in ("salesforce", "hubspot"):
                self.box.admin(crm, "POST", "clock",
                               {"offset_seconds": self.offset.total_seconds()})

    def crm_tasks(self) -> Tasks:
        return {crm: {(key_of(crm, t), owner_of(crm, t), due_of(crm, t))
                      for t in self.box.tasks(crm)} for crm in ("salesforce", "hubspot")}

    def close(self) -> None:
        for service in self.services:
            service.close()
        self.box.stop()


def _ledger_rows(url: str) -> list[Any]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(task)))
    finally:
        engine.dispose()


def _check_one_run(run: Run) -> Tasks:
    tasks = run.crm_tasks()
    rows = _ledger_rows(run.url)
    for crm in ("salesforce", "hubspot"):
        keys = [key_of(crm, t) for t in run.box.tasks(crm)]
        assert len(keys) == len(set(keys)), f"{crm}: a task written twice"
        per_day = Counter((owner, due) for _, owner, due in tasks[crm])
        assert max(per_day.values()) <= CAP, (crm, per_day.most_common(3))
    assert len({owner for crm in tasks for _, owner, _ in tasks[crm]}) == 2  # one a CRM
    # The cap moved tasks (40 deals x the default playbook do not fit 8 a day) ...
    moved = [r for r in rows if r.planned_due is not None and r.due_date != r.planned_due]
    assert len(moved) > 40
    assert all(r.due_date <= r.latest_due for r in rows if r.latest_due is not None)
    # ... and skipped only what found no day with room before its grace ran out: every
    # working day from its planned day to its last one is full in its CRM.
    skipped = [r for r in rows if r.status == TaskStatus.SKIPPED
               and r.cancel_reason == CancelReason.CAP]
    crm_of = {"acme-sf": "salesforce", "acme-hs": "hubspot"}
    for row in skipped:
        on_day = Counter(due for _, owner, due in tasks[crm_of[row.connection]]
                         if owner == row.owner_id)
        days = [row.planned_due + timedelta(days=n)
                for n in range((row.latest_due - row.planned_due).days + 1)]
        working = [d for d in days if d.weekday() < 5 and d not in US_HOLIDAYS]
        assert working and all(on_day[d] == CAP for d in working), (row.key, on_day)
    written = {r.key for r in rows if r.status == TaskStatus.WRITTEN}
    assert written == {key for crm in tasks for key, _, _ in tasks[crm]}
    return tasks


def test_forty_deals_of_one_owner_under_a_cap_of_eight(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    results: list[Tasks] = []
    for name, url, replicas in (("one", f"sqlite:///{tmp_path / 'ledger.db'}", 1),
                                ("two", pg_url, 2)):
        run = Run(tmp_path / name, url, monkeypatch, now, replicas)
        try:
            run.simulate()
            results.append(_check_one_run(run))
        finally:
            run.close()
    single, two = results
    assert sum(len(v) for v in single.values()) > 2 * 40
    assert two == single
