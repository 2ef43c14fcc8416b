"""A first sync over REST and one through Bulk API 2.0 plan the same deals the same way: the
real sync (`run_tick`) against the Salesforce emulator, two ledgers, one org."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sandbox.runner import salesforce_connection, start_sandbox
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import enrollment, task
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

DEALS = 1300  # more than the first 1,000-row REST page
CONFIG = """\
version: 1
defaults: {timezone: America/New_York, calendar: {country: US}, lead_time: 7d, grace: 7d,
           horizon: 2y}
stop: {on_new_deal_for_account: false, notify_owner: false}
cadences:
  - id: later
    steps:
      - {id: first, at: 200d, channel: call, subject: "First: {{ deal.name }}"}
      - {id: second, at: 400d, subject: "Second: {{ deal.name }}"}
connections:
"""
PLAN_COLUMNS = [c for c in enrollment.c if c.name not in ("id", "enrolled_at")]
TASK_COLUMNS = [c for c in task.c if c.name not in ("id", "created_at", "updated_at")]


def first_sync(tmp: Path, monkeypatch: pytest.MonkeyPatch, extra: str, fallback: str
               ) -> tuple[list[Any], list[Any]]:
    tmp.mkdir()
    url = f"sqlite:///{tmp / 'ledger.db'}"
    monkeypatch.setenv("WINBACK_DATABASE_URL", url)
    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    engine.dispose()
    path = tmp / "winback.yaml"
    path.write_text(CONFIG + salesforce_connection("sf", fallback=fallback, extra=extra))
    service = build_service(load_config(path), path, clock=lambda: datetime.now(UTC))
    try:
        result = run_tick(service.contexts["sf"], ignore_schedule=True)
        assert result.result == "ok", result
        with service.ledger.engine.connect() as conn:
            plans = list(conn.execute(select(*PLAN_COLUMNS).order_by(enrollment.c.deal_id)))
            tasks = list(conn.execute(select(*TASK_COLUMNS).order_by(task.c.key)))
    finally:
        service.close()
    return plans, tasks


def test_rest_and_bulk_first_syncs_plan_the_same(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    box = start_sandbox(seed=5, ca_dir=tmp_path / "ca")
    try:
        box.admin("salesforce", "POST", "seed", {"generate": {
            "deals": DEALS, "seed": 5, "days_back": 30, "owners": 4, "inactive_owners": 1}})
        users = box.admin("salesforce", "GET", "records/User")["records"]
        fallback = next(str(u["Id"]) for u in users if u.get("IsActive"))
        for key, value in box.environment().items():
            monkeypatch.setenv(key, value)
        box.admin("salesforce", "POST", "calls/reset")
        rest = first_sync(tmp_path / "rest", monkeypatch, "    bulk_threshold: null\n",
                          fallback)
        rest_calls = box.admin("salesforce", "GET", "calls")["calls"]
        box.admin("salesforce", "POST", "calls/reset")
        bulk = first_sync(tmp_path / "bulk", monkeypatch,
                          "    bulk_threshold: 1000\n    bulk_poll: 0.05s\n", fallback)
        bulk_calls = box.admin("salesforce", "GET", "calls")["calls"]
    finally:
        box.stop()
    assert "bulk2_create" not in rest_calls and rest_calls["query_more"] >= 1
    assert bulk_calls["bulk2_create"] == 1 and bulk_calls["bulk2_results"] == 1
    plans, tasks = bulk
    assert len(plans) > DEALS // 2 and tasks  # most deals are lost and planned
    assert plans == rest[0]
    assert tasks == rest[1]
