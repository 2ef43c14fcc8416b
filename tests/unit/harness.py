"""A small world for worker tests: a config file, the in-memory CRM, a ledger, a movable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.memory import InMemoryConnector
from connectors.models import Contact, Deal, Owner
from tests.unit.planning import BASE
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.context import SyncContext, TickResult
from worker.sync.tick import run_tick

CONFIG = BASE  # the planner tests' configuration: one connection, fallback owner FALLBACK


class World:
    def __init__(self, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, *,
                 start: datetime = datetime(2027, 3, 1, 14, tzinfo=UTC), extra: str = "",
                 ttl: float = 60.0) -> None:
        self.tmp_path = tmp_path
        self.now = start
        self.path = tmp_path / "winback.yaml"
        self.path.write_text(CONFIG + extra)
        monkeypatch.setenv("WINBACK_DATABASE_URL", database_url)
        engine = make_engine(database_url, pool_size=1)
        migrate.upgrade(engine)  # `winback migrate`, as a deploy runs it
        engine.dispose()
        self.crm = InMemoryConnector("crm", clock=lambda: self.now)
        self.crm.admin_put_owner(Owner(id="U1", timezone="America/New_York", country="US"))
        self.crm.admin_put_owner(Owner(id="FALLBACK", timezone="America/New_York", country="US"))
        self.ttl = ttl
        self.service = self._build()

    def _build(self) -> Service:
        config = load_config(self.path, env={})
        return build_service(config, self.path, clock=lambda: self.now,
                             connector_factory=lambda s, o: self.crm, lease_ttl=self.ttl)

    def reload(self, extra: str) -> None:
        """Apply a configuration edit, as a deploy would (a new process, same ledger)."""
        self.service.close()
        self.path.write_text(CONFIG + extra)
        self.service = self._build()

    @property
    def ctx(self) -> SyncContext:
        return self.service.contexts["crm"]

    def tick(self, **kw: Any) -> TickResult:
        result = run_tick(self.ctx, ignore_schedule=True, **kw)
        assert result.result in ("ok", "stopped"), result
        return result

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def lost(self, deal_id: str = "D1", *, closed: date | None = None, account: str = "A1",
             contacts: tuple[Contact, ...] = (Contact(id="K1", name="Ann"),),
             owner: str = "U1", **fields: Any) -> Deal:
        deal = Deal(id=deal_id, name=f"Deal {deal_id}", account_id=account,
                    account_name=f"Account {account}", closed_at=closed or self.now.date(),
                    loss_reason=fields.pop("loss_reason", "Lost to competitor"),
                    amount=fields.pop("amount", 25000.0), owner=Owner(id=owner), **fields)
        return self.crm.admin_put_deal(deal, contacts)

    def close(self) -> None:
        self.service.close()
