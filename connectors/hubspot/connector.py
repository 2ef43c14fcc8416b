"""`HubSpotConnector`: the CRM port over HubSpot's CRM API v3/v4 with the real SDK.

    connector.py   the port, wiring the parts below
    transport.py   every HTTP call: budget guard, rate limiter, token, retries, errors, logs
    limits.py      client rate limiter (10 s burst, search per second) and the daily budget
    auth.py        static token or OAuth refresh
    failures.py    HubSpot errors -> the port's error tree
    mapping.py     HubSpot JSON <-> Deal, Contact, Owner, task properties
    deals.py       changed deals, deals by id, stakeholders, owners, pipelines
    tasks.py       write (two key modes), find and close tasks
    setup.py       ensure_setup and the key mode
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from connectors.base import (
    ActivityPage,
    ApiUsage,
    CallObserver,
    DealPage,
    HubSpotSettings,
    SetupCheck,
    SetupReport,
)
from connectors.hubspot.activities import ActivityReader
from connectors.hubspot.deals import DealReader
from connectors.hubspot.setup import Setup
from connectors.hubspot.tasks import WRITE_BATCH, TaskWriter
from connectors.hubspot.transport import Transport
from connectors.models import (
    ActivityKind,
    Contact,
    Deal,
    Owner,
    TaskDraft,
    TaskRef,
    TaskState,
    WriteResult,
)


class HubSpotConnector:
    """One HubSpot account (portal) behind the `Connector` port."""

    kind = "hubspot"
    write_batch = WRITE_BATCH
    # In create+search mode keys are found by search, which lags writes (reference §1.3): a
    # task created a moment ago may not show for this long.
    lookup_lag = timedelta(minutes=2)
    # Search leaves archived engagements out: a deletion is found by `missing_activities`.
    sees_deleted_activities = False

    def __init__(self, settings: HubSpotSettings, *, observer: CallObserver | None = None,
                 retry_budget: float = 20.0) -> None:
        self.name = settings.name
        self.settings = settings
        self._transport = Transport(settings, observer, retry_budget=retry_budget)
        self._deals = DealReader(self._transport, settings)
        self._setup = Setup(self._transport, settings, self._deals)
        self._activities = ActivityReader(self._transport, settings.key_property)
        self._tasks = TaskWriter(self._transport, settings, self._setup.key_mode,
                                 self._deals.owner_map)

    def __repr__(self) -> str:
        return f"HubSpotConnector(name={self.name!r}, base_url={self.settings.base_url!r})"

    @property
    def calls_made(self) -> int:
        """HTTP calls made so far, retries and token refreshes included."""
        return self._transport.calls_made

    def login_checks(self) -> Iterator[SetupCheck]:
        """None: a token or an OAuth grant has no flow or API version to check beyond what
        `ensure_setup` reports."""
        return iter(())

    def access_checks(self) -> Iterator[SetupCheck]:
        """None: HubSpot has no permission winback may do without."""
        return iter(())

    def begin_run(self, run_id: str | None, guard: Callable[[], None] | None = None) -> None:
        self._transport.run_id = run_id
        self._transport.guard = guard

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        return self._setup.ensure_setup(create)

    def setup_state(self) -> dict[str, Any] | None:
        state = self._setup.state()
        return None if state is None else {"crm": self.kind, **state}

    def restore_setup(self, state: Mapping[str, Any]) -> bool:
        return state.get("crm") == self.kind and self._setup.restore(state)

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        return self._deals.changed(since)

    def changed_activities(self, since: datetime, kinds: frozenset[ActivityKind]
                           ) -> Iterator[ActivityPage]:
        """One search per engagement object the kinds need, their links in v4 batches."""
        return self._activities.changed(since, kinds)

    def missing_activities(self, ids: Mapping[str, ActivityKind]) -> set[str]:
        """One batch read per engagement object and 100 ids: archived ids are missing."""
        return self._activities.missing(ids)

    def every_deal(self, tracked: int) -> Iterator[list[Deal]] | None:
        """None: HubSpot re-reads tracked deals by id (batch read, 100 a call)."""
        return None

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        return self._deals.by_id(ids)

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        return self._deals.stakeholders(deal_ids)

    def owners(self) -> list[Owner]:
        return self._deals.owners()

    def write_tasks(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        return self._tasks.write(drafts)

    def find_tasks(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        return self._tasks.find(keys)

    def task_status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        return self._tasks.status(crm_ids) if crm_ids else {}

    def close_tasks(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        return self._tasks.close(crm_ids)

    def api_usage(self) -> ApiUsage | None:
        return self._transport.budget.usage()

    def close(self) -> None:
        self._transport.close()
