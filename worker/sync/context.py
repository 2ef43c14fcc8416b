"""What one connection's tick works with, and what it reports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from structlog.typing import FilteringBoundLogger

from connectors.base import Connector
from worker.cadence.engine import Planner
from worker.ledger.activities import StoredActivity
from worker.ledger.leases import Lease, Leases
from worker.ledger.store import Ledger
from worker.settings.connections import HubSpotConnection, SalesforceConnection
from worker.settings.models import Config
from worker.telemetry.metrics import Metrics

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Counts:
    pulled: int = 0
    enrolled: int = 0
    unmatched: int = 0
    replanned: int = 0
    stopped: int = 0
    reborn: int = 0
    won_back: int = 0
    deals_skipped: int = 0
    tasks_planned: int = 0
    tasks_written: int = 0
    tasks_failed: int = 0
    tasks_reconciled: int = 0
    tasks_closed: int = 0
    owner_fallbacks: int = 0
    activities_read: int = 0  # activities read from the CRM (issue 13)
    skipped_by_activity: int = 0  # tasks skip_if decided not to write
    moved_by_cap: int = 0  # tasks the owner's daily cap moved to a later day (issue 14)
    skipped_by_cap: int = 0  # tasks it found no day for within grace and horizon
    waiting: int = 0  # steps of the plans made this tick waiting for a completion
    # Tasks the CRM refused for good this tick, by the CRM's error code; and the owners whose
    # tasks were refused as inactive or unknown (id -> name, "" when the name is not known).
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    refused_owners: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


@dataclass
class TickResult:
    connection: str
    result: str  # ok | not_due | busy | error | lease_lost | budget | stopped
    counts: Counts = field(default_factory=Counts)
    seconds: float = 0.0
    error: str | None = None
    api_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.result in ("ok", "not_due", "busy", "stopped")


@dataclass
class SyncContext:
    config: Config
    settings: SalesforceConnection | HubSpotConnection
    connector: Connector
    planner: Planner
    ledger: Ledger
    leases: Leases
    metrics: Metrics
    clock: Clock = utc_now
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str, int, int | None], None] | None = None
    key_mode: str = "upsert"
    setup_done: bool = False
    log: FilteringBoundLogger = field(default_factory=lambda: structlog.get_logger("winback.sync"))

    @property
    def name(self) -> str:
        return self.settings.name


@dataclass
class Tick:
    """The state of one tick in progress."""

    ctx: SyncContext
    lease: Lease
    now: datetime
    counts: Counts = field(default_factory=Counts)
    dry_run: bool = False
    # The ledger's activities by deal, account and contact, read once in a tick the first
    # time a deal starts being tracked (after this tick's activity read).
    stored_activity: StoredActivity | None = None
    cap_owners: set[str] = field(default_factory=set)  # owners to place again (sync/cap.py)

    def check(self) -> None:
        """Before any CRM call: still ours, and not asked to stop."""
        self.lease.check()
