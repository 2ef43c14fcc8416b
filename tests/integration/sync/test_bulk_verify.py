"""The daily re-read of tracked deals through one Bulk API 2.0 scan once they are more than
bulk_threshold: the real sync (`run_tick`) against the Salesforce emulator. A deal the
incremental pull cannot see change (gone past the recycle bin; reopened with its stamp kept
old) is still stopped, in a handful of calls instead of one per ~200 tracked deals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sandbox.runner import salesforce_connection, start_sandbox
from tests.integration.sync.test_bulk_pull_sync import CONFIG
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.records import EnrollmentStatus
from worker.ledger.schema import enrollment
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

DEALS = 400


def test_daily_reread_of_many_tracked_deals_uses_one_bulk_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    box = start_sandbox(seed=5, ca_dir=tmp_path / "ca")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("WINBACK_DATABASE_URL", url)
    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    engine.dispose()
    now = [datetime.now(UTC)]
    try:
        box.admin("salesforce", "POST", "seed", {"generate": {
            "deals": DEALS, "seed": 5, "days_back": 30, "owners": 4}})
        users = box.admin("salesforce", "GET", "records/User")["records"]
        fallback = next(str(u["Id"]) for u in users if u.get("IsActive"))
        for key, value in box.environment().items():
            monkeypatch.setenv(key, value)
        path = tmp_path / "winback.yaml"
        path.write_text(CONFIG + salesforce_connection(
            "sf", fallback=fallback, extra="    bulk_threshold: 100\n    bulk_poll: 0.05s\n"))
        service = build_service(load_config(path), path, clock=lambda: now[0])
        try:
            assert run_tick(service.contexts["sf"], ignore_schedule=True).result == "ok"
            with service.ledger.engine.connect() as conn:
                tracked = [str(r.deal_id) for r in conn.execute(select(enrollment.c.deal_id)
                           .where(enrollment.c.status == EnrollmentStatus.ACTIVE)
                           .order_by(enrollment.c.deal_id))]
            assert len(tracked) > 200  # more than one read by id (~200 ids a call)
            purged, reopened = tracked[:2], tracked[2]
            emu = box.salesforce_emulator
            with emu.lock:  # emptied from the recycle bin: no pull can see it any more
                for deal_id in purged:
                    emu.store["Opportunity"].remove(deal_id)
            old = box.admin("salesforce", "GET", f"records/Opportunity/{reopened}")
            box.admin("salesforce", "PATCH", f"records/Opportunity/{reopened}", {
                "StageName": "Prospecting", "SystemModstamp": old["SystemModstamp"]})
            box.admin("salesforce", "POST", "calls/reset")
            now[0] += timedelta(hours=25)
            assert run_tick(service.contexts["sf"], ignore_schedule=True).result == "ok"
            calls = box.admin("salesforce", "GET", "calls")["calls"]
            with service.ledger.engine.connect() as conn:
                status = {str(r.deal_id): (str(r.status), r.stop_reason) for r in conn.execute(
                    select(enrollment.c.deal_id, enrollment.c.status, enrollment.c.stop_reason)
                    .where(enrollment.c.deal_id.in_([*purged, reopened])))}
        finally:
            service.close()
    finally:
        box.stop()
    assert calls.get("bulk2_create") == 1 and calls.get("bulk2_results") == 1, calls
    # the pull's one REST page, no read by id (2+ calls here, 500 at 100k)
    assert calls.get("query_all", 0) + calls.get("query_more", 0) <= 1, calls
    assert {d: s for d, (s, _) in status.items()} == dict.fromkeys(
        [*purged, reopened], EnrollmentStatus.STOPPED.value), status
    assert status[purged[0]][1] == "deleted" and status[reopened][1] == "reopened", status
