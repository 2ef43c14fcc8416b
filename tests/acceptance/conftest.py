"""The whole worker against the sandbox: both CRM emulators, the real SDKs, a real ledger."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.runner import Sandbox, hubspot_connection, salesforce_connection, start_sandbox
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.context import TickResult
from worker.sync.tick import run_tick

CONFIG = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  lead_time: 7d
  grace: 7d
  horizon: 3y
stop: {on_reopen: close_open_tasks, on_new_deal_for_account: true, notify_owner: true}
connections:
"""


class Year:
    """A sandbox, a config for both CRMs, a ledger, and a clock the test moves."""

    def __init__(self, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch,
                 deals: int = 40) -> None:
        self.tmp = tmp_path
        self.box: Sandbox = start_sandbox(
            seed=5, ca_dir=tmp_path / "ca",
            hubspot_options={"burst": 100_000, "search_per_second": 1000})
        self.box.seed(deals, 5, days_back=6, owners=6, inactive_owners=1)
        self.sf_fallback, self.hs_fallback = self.box.active_owners()
        for key, value in self.box.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("WINBACK_DATABASE_URL", database_url)
        engine = make_engine(database_url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        self.path = tmp_path / "winback.yaml"
        self.path.write_text(CONFIG + salesforce_connection("acme-sf", fallback=self.sf_fallback)
                             + hubspot_connection("acme-hs", fallback=self.hs_fallback))
        self.offset = timedelta(0)
        self.frozen: datetime | None = None  # the clock stands still during a tick
        self.last_tick = self.now()
        self.service: Service = build_service(load_config(self.path), self.path,
                                              clock=self.now)

    def now(self) -> datetime:
        return self.frozen or datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)
        for crm in ("salesforce", "hubspot"):
            self.box.admin(crm, "POST", "clock", {"offset_seconds": self.offset.total_seconds()})

    def tick(self) -> dict[str, TickResult]:
        self.last_tick = self.frozen = datetime.now(UTC) + self.offset
        try:
            results = {name: run_tick(ctx, ignore_schedule=True)
                       for name, ctx in self.service.contexts.items()}
        finally:
            self.frozen = None
        for name, result in results.items():
            assert result.result == "ok", (name, result)
        return results

    def tasks(self, crm: str) -> list[dict[str, Any]]:
        return self.box.tasks(crm)

    def close(self) -> None:
        self.service.close()
        self.box.stop()


@pytest.fixture
def year(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Year]:
    y = Year(tmp_path, database_url, monkeypatch)
    yield y
    y.close()
