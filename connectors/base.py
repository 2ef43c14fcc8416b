"""The CRM port: what the worker may ask of any CRM (the settings an adapter is built from are
in `connectors.settings`, re-exported here).

The worker sees only this module, `connectors.models` and `connectors.errors`; which CRM is
behind a `Connector` is the adapter's business. Adapters: `connectors.salesforce`,
`connectors.hubspot`; a fake for tests: `connectors.memory.InMemoryConnector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from connectors.models import (
    Activity,
    ActivityKind,
    Contact,
    Deal,
    Owner,
    TaskDraft,
    TaskRef,
    TaskState,
    WriteResult,
)
from connectors.settings import FieldMap, HubSpotSettings, SalesforceSettings

__all__ = ["MAX_REAUTH", "ActivityPage", "ApiUsage", "CallObserver", "CallRecord", "Connector",
           "DealPage",
           "FieldMap", "HubSpotSettings", "SalesforceSettings", "SetupCheck", "SetupReport"]


@dataclass(frozen=True)
class DealPage:
    """One page of changed deals, oldest change first.

    `watermark` is the modification stamp it is safe to resume from once this page is stored
    (the newest stamp in the page), or None when the page must not move the watermark."""

    deals: list[Deal]
    watermark: datetime | None


@dataclass(frozen=True)
class ActivityPage:
    """One page of changed activities, oldest change first, across every object read.

    `watermark` is the modification stamp it is safe to resume from once this page is
    stored (the newest in the page, every object being read in one merged order), or None
    when the page must not move it. Resume with an overlap: rows stamped at the watermark
    come again."""

    activities: list[Activity]
    watermark: datetime | None


@dataclass(frozen=True)
class SetupCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passes, but needs attention (a legacy login, ...)


@dataclass(frozen=True)
class SetupReport:
    checks: list[SetupCheck]
    key_mode: Literal["upsert", "marker", "create+search"] = "upsert"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call a connector made: what the metrics and the `crm.call` log event read."""

    connection: str
    crm: str
    endpoint: str
    status: int | None
    ms: float
    items: int = 0
    error: str | None = None


CallObserver = Callable[[CallRecord], None]

# A call refused for an expired session or token gets a fresh one and is sent again, at most
# this many times: a credential revoked just after it was issued (an admin, another process
# refreshing the same grant) is survived, while a login the CRM keeps refusing stops the
# connection with AuthError instead of looping.
MAX_REAUTH = 2


@runtime_checkable
class Connector(Protocol):
    """One connected CRM account."""

    name: str
    kind: str

    @property
    def write_batch(self) -> int:
        """The most tasks one `write_tasks` / `close_tasks` call to the CRM carries: the
        worker reads and sends due tasks in batches of this size."""

    @property
    def lookup_lag(self) -> timedelta:
        """How long a task just written may still be missing from a lookup by key (HubSpot
        search trails writes; Salesforce SOQL does not): a row left `sending` and not found is
        held this long before it is sent again, unless writes are upserts by key."""

    @property
    def sees_deleted_activities(self) -> bool:
        """True when `changed_activities` reports deleted activities (flagged); False when a
        deletion only shows by asking for the id (`missing_activities`)."""

    @property
    def calls_made(self) -> int:
        """HTTP calls made so far (retries, logins and token refreshes included)."""

    def login_checks(self) -> Iterator[SetupCheck]:
        """Checks about the login itself that `ensure_setup` leaves out (doctor runs them
        first), one at a time so that each is reported before the next may raise. Salesforce:
        the login flow (a legacy one warns), then the API version the org offers (one call,
        logging in; a refused login raises FatalConnectionError). Others: none."""

    def access_checks(self) -> Iterator[SetupCheck]:
        """Checks of what the user may do beyond `ensure_setup`, that doctor runs after the
        API budget line. Salesforce: whether Bulk API 2.0 query jobs are allowed (big pulls
        fall back to REST when not). Others: none."""

    def begin_run(self, run_id: str | None, guard: Callable[[], None] | None = None) -> None:
        """Tag the calls that follow with a run id (sent as `X-Winback-Run`); `guard` runs
        before every HTTP call that follows (retries, logins and setup calls included): the
        worker's lease check, which raises to stop the run."""

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        """Check (and where allowed create) what winback needs in the CRM."""

    def setup_state(self) -> dict[str, Any] | None:
        """What the last `ensure_setup` learned that later calls use (key mode, picklist
        values, pipelines, owners), as plain JSON values for the worker to keep; None when
        there is nothing worth keeping (setup not run, or it failed)."""

    def restore_setup(self, state: Mapping[str, Any]) -> bool:
        """Take back a `setup_state` instead of running `ensure_setup` (no call); False when
        the state does not fit this connector (its configuration changed)."""

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        """Every deal (any stage, deleted ones flagged) modified at or after `since`, in pages,
        oldest change first, with owner, account and the configured fields filled in."""

    def changed_activities(self, since: datetime, kinds: frozenset[ActivityKind]
                           ) -> Iterator[ActivityPage]:
        """Every activity of these kinds (by anyone, winback's own tasks included) changed at
        or after `since`, in pages, oldest change first, with the linked deal, account,
        contact and owner ids and, on a winback task, its key. Only the CRM objects the
        kinds need are read. Deleted ones are flagged where the CRM reports them
        (Salesforce queryAll); HubSpot search leaves archived records out, so there a
        deleted activity stops appearing instead."""

    def missing_activities(self, ids: Mapping[str, ActivityKind]) -> set[str]:
        """Of these activities (CRM id -> kind) read earlier, the ids the CRM no longer has
        (deleted). HubSpot: a batch read of each engagement object (archived ids are not
        found); where deletions are flagged (`sees_deleted_activities`): none, no call."""

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        """The current state of these deals; a deleted deal comes back with `deleted=True`."""

    def every_deal(self, tracked: int) -> Iterator[list[Deal]] | None:
        """For the daily re-read of `tracked` deals: every deal of the account in one scan
        (a deal missing from it is gone) when that is cheaper than reading them by id, in
        pages; None: read them by id (`deals_by_id`)."""

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        """Contacts per deal (opt-out flags set); every id asked for is a key."""

    def owners(self) -> list[Owner]:
        """Every owner, active and inactive."""

    def write_tasks(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        """Write tasks idempotently by key, in the largest batches the CRM allows; one result
        per draft, matched by key. A bad record fails alone."""

    def find_tasks(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        """Tasks already in the CRM for these keys."""

    def task_status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        """Whether these tasks (by CRM id) are completed, and when: the cheap read of
        winback's own open tasks when no activity rule reads completions. Batched (Salesforce:
        SOQL on Task Id IN (...) with IsClosed and CompletedDateTime, queryAll since closed
        activities get archived; HubSpot: batch read of tasks with hs_task_status and
        hs_task_completion_date); an id the CRM no longer has is left out."""

    def close_tasks(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        """Mark tasks completed; results keyed by CRM id."""

    def api_usage(self) -> ApiUsage | None:
        """The daily API budget as last seen, if the CRM reports it."""

    def close(self) -> None:
        """Release connections."""
