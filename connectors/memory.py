"""An in-memory CRM behind the port, for the worker's unit tests (it passes the contract tests).

It behaves like a well-run CRM: keyed upserts, batches of `write_batch`, per-record errors
for inactive or unknown owners, a daily budget, and call counts per endpoint. Tests change
its data with the `admin_*` methods, which stamp `modified_at` from the injected clock.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import ActivityPage, ApiUsage, DealPage, SetupCheck, SetupReport
from connectors.errors import BudgetExhausted, RetryableError
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

Clock = Callable[[], datetime]
MAX_ATTEMPTS = 12


@dataclass
class StoredTask:
    crm_id: str
    key: str
    draft: TaskDraft
    completed: bool = False
    writes: int = 1
    completed_at: datetime | None = None


class InMemoryConnector:
    kind = "memory"
    sees_deleted_activities = True  # a deleted activity comes back flagged (as Salesforce)

    def __init__(self, name: str = "memory", *, clock: Clock | None = None,
                 page_size: int = 200, write_batch: int = 200, daily_limit: int = 100_000,
                 api_budget_share: float = 1.0) -> None:
        self.name = name
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.page_size = page_size
        self.write_batch = write_batch
        self.lookup_lag = timedelta(0)  # a dict: what is written is found at once
        self.daily_limit = daily_limit
        self.api_budget_share = api_budget_share
        self.calls: Counter[str] = Counter()
        self.runs: list[str | None] = []
        self.guard: Callable[[], None] | None = None
        self._lock = threading.RLock()
        self._deals: dict[str, Deal] = {}
        self._contacts: dict[str, list[Contact]] = {}
        self._owners: dict[str, Owner] = {}
        self._tasks: dict[str, StoredTask] = {}
        self._activities: dict[str, Activity] = {}  # winback's tasks too, by CRM id
        self._ids = itertools.count(1)
        self._faults: dict[str, list[Exception]] = {}
        self._transient = 0.0
        self._rng = random.Random(0)
        self.retries = 0

    # -- test controls ----------------------------------------------------------------------
    def admin_put_owner(self, owner: Owner) -> None:
        with self._lock:
            self._owners[owner.id] = owner

    def admin_put_deal(self, deal: Deal, contacts: Sequence[Contact] = ()) -> Deal:
        """Create or replace a deal; its modification stamp is now."""
        with self._lock:
            stamped = replace_deal(deal, modified_at=self.clock(),
                                   created_at=deal.created_at or self.clock())
            self._deals[deal.id] = stamped
            if contacts or deal.id not in self._contacts:
                self._contacts[deal.id] = list(contacts)
            return stamped

    def admin_update_deal(self, deal_id: str, **changes: object) -> Deal:
        with self._lock:
            deal = replace_deal(self._deals[deal_id], modified_at=self.clock(), **changes)
            self._deals[deal_id] = deal
            return deal

    def admin_delete_deal(self, deal_id: str) -> None:
        self.admin_update_deal(deal_id, deleted=True)

    def admin_vanish(self, deal_id: str) -> None:
        """Remove a deal without a trace in changed_deals (as HubSpot archives: search stops
        returning it); deals_by_id then reports it deleted."""
        with self._lock:
            self._deals.pop(deal_id, None)

    def admin_fail_next(self, endpoint: str, error: Exception, times: int = 1) -> None:
        """Make the next `times` calls of `endpoint` raise `error`."""
        with self._lock:
            self._faults.setdefault(endpoint, []).extend([error] * times)

    def admin_transient_faults(self, rate: float, seed: int = 0) -> None:
        """Fail this share of calls with a transient error that the connector retries (as
        the real adapters retry 429/5xx); every attempt counts as a call."""
        with self._lock:
            self._transient = rate
            self._rng = random.Random(seed)

    def admin_tasks(self) -> list[StoredTask]:
        with self._lock:
            return list(self._tasks.values())

    def admin_put_activity(self, activity: Activity) -> Activity:
        """Log (or replace) an activity as a rep would; its modification stamp is now."""
        with self._lock:
            stamped = activity.model_copy(update={"modified_at": self.clock()})
            self._activities[activity.id] = stamped
            return stamped

    def admin_update_activity(self, activity_id: str, **changes: object) -> Activity:
        with self._lock:
            changes["modified_at"] = self.clock()
            updated = self._activities[activity_id].model_copy(update=changes)
            self._activities[activity_id] = updated
            return updated

    def admin_complete_task(self, crm_id: str, at: datetime | None = None) -> Activity:
        """A rep completes a task (winback's or not) now, or at `at`."""
        moment = at or self.clock()
        with self._lock:
            for task in self._tasks.values():
                if task.crm_id == crm_id:
                    task.completed = True
                    task.completed_at = moment
            return self.admin_update_activity(crm_id, completed=True, completed_at=moment,
                                              at=moment, status="Completed")

    def admin_delete_activity(self, activity_id: str) -> None:
        self.admin_update_activity(activity_id, deleted=True)

    def admin_set_used(self, used: int) -> None:
        with self._lock:
            self.calls["_preused"] = used

    # -- the port -------------------------------------------------------------------------------
    @property
    def calls_made(self) -> int:
        """Calls made so far (every retried attempt, and `admin_set_used`'s preset, counted)."""
        with self._lock:
            return sum(self.calls.values())

    def login_checks(self) -> Iterator[SetupCheck]:
        """No login to check."""
        return iter(())

    def access_checks(self) -> Iterator[SetupCheck]:
        """Nothing to check."""
        return iter(())

    def begin_run(self, run_id: str | None, guard: Callable[[], None] | None = None) -> None:
        self.runs.append(run_id)
        self.guard = guard

    def setup_state(self) -> dict[str, Any] | None:
        return {"crm": "memory"}

    def restore_setup(self, state: Mapping[str, Any]) -> bool:
        return state.get("crm") == "memory"

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        self._call("setup")
        return SetupReport([SetupCheck("key storage", True, "keys are stored natively")])

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        self._call("deals.changed")
        with self._lock:
            changed = sorted((d for d in self._deals.values()
                              if d.modified_at is not None and d.modified_at >= since),
                             key=lambda d: (d.modified_at, d.id))
        if not changed:
            return
        for start in range(0, len(changed), self.page_size):
            if start:
                self._call("deals.changed")
            page = [self._with_owner(d) for d in changed[start:start + self.page_size]]
            yield DealPage(page, page[-1].modified_at)

    def changed_activities(self, since: datetime, kinds: frozenset[ActivityKind]
                           ) -> Iterator[ActivityPage]:
        if not kinds:
            return
        self._call("activities.changed")
        with self._lock:
            changed = sorted((a for a in self._activities.values()
                              if a.kind in kinds and a.modified_at is not None
                              and a.modified_at >= since),
                             key=lambda a: (a.modified_at, a.id))
        for start in range(0, len(changed), self.page_size):
            if start:
                self._call("activities.changed")
            page = changed[start:start + self.page_size]
            yield ActivityPage(page, page[-1].modified_at)

    def missing_activities(self, ids: Mapping[str, ActivityKind]) -> set[str]:
        """None: `changed_activities` flags deleted activities, as Salesforce does."""
        return set()

    def every_deal(self, tracked: int) -> Iterator[list[Deal]] | None:
        return None  # (tracked deals are re-read by id)

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        found = []
        for start in range(0, len(ids), 100):
            self._call("deals.read")
            with self._lock:
                found += [self._with_owner(self._deals[i]) if i in self._deals
                          else Deal(id=i, deleted=True, is_closed=False)
                          for i in ids[start:start + 100]]
        return found

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        self._call("stakeholders")
        with self._lock:
            return {i: list(self._contacts.get(i, [])) for i in deal_ids}

    def owners(self) -> list[Owner]:
        self._call("owners")
        with self._lock:
            return list(self._owners.values())

    def write_tasks(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        results: list[WriteResult] = []
        for start in range(0, len(drafts), self.write_batch):
            self._call("tasks.write", items=len(drafts[start:start + self.write_batch]))
            with self._lock:
                results += [self._write(d) for d in drafts[start:start + self.write_batch]]
        return results

    def find_tasks(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        found: dict[str, TaskRef] = {}
        for start in range(0, len(keys), 200):
            self._call("tasks.find")
            with self._lock:
                for key in keys[start:start + 200]:
                    task = self._tasks.get(key)
                    if task is not None:
                        found[key] = TaskRef(key, task.crm_id, task.completed,
                                             task.draft.owner_id)
        return found

    def task_status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        found: dict[str, TaskState] = {}
        for start in range(0, len(crm_ids), 100):
            self._call("tasks.status")
            with self._lock:
                by_id = {t.crm_id: t for t in self._tasks.values()}
                for crm_id in crm_ids[start:start + 100]:
                    task = by_id.get(crm_id)
                    if task is not None:
                        found[crm_id] = TaskState(crm_id, task.completed, task.completed_at)
        return found

    def close_tasks(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        results = []
        for start in range(0, len(crm_ids), self.write_batch):
            self._call("tasks.close")
            with self._lock:
                by_id = {t.crm_id: t for t in self._tasks.values()}
                for crm_id in crm_ids[start:start + self.write_batch]:
                    task = by_id.get(crm_id)
                    if task is None:
                        results.append(WriteResult(crm_id, error_code="NOT_FOUND",
                                                   message="no such task"))
                    else:
                        task.completed = True
                        self._task_activity(task)
                        results.append(WriteResult(crm_id, crm_id=crm_id))
        return results

    def api_usage(self) -> ApiUsage | None:
        return ApiUsage(sum(self.calls.values()), self.daily_limit)

    def close(self) -> None:
        """Nothing to release."""

    # -- internals ------------------------------------------------------------------------------
    def _call(self, endpoint: str, items: int = 0) -> None:
        guard = self.guard
        if guard is not None:
            guard()
        with self._lock:
            faults = self._faults.get(endpoint)
            if faults:
                raise faults.pop(0)
            for _ in range(MAX_ATTEMPTS):
                used = sum(self.calls.values())
                if used >= self.daily_limit * self.api_budget_share:
                    raise BudgetExhausted(f"{used} of {self.daily_limit} daily calls used",
                                          connection=self.name, endpoint=endpoint)
                self.calls[endpoint] += 1
                if not (self._transient and self._rng.random() < self._transient):
                    return
                self.retries += 1
            raise RetryableError(f"{endpoint} kept failing", connection=self.name,
                                 endpoint=endpoint)

    def _with_owner(self, deal: Deal) -> Deal:
        if deal.owner is None:
            return deal
        owner = self._owners.get(deal.owner.id)
        return replace_deal(deal, owner=owner) if owner is not None else deal

    def _write(self, draft: TaskDraft) -> WriteResult:
        owner = self._owners.get(draft.owner_id)
        if owner is None or not owner.active:
            code = "INACTIVE_OWNER_OR_USER" if owner else "INVALID_CROSS_REFERENCE_KEY"
            return WriteResult(draft.key, error_code=code,
                               message=f"owner {draft.owner_id} cannot be assigned tasks")
        existing = self._tasks.get(draft.key)
        if existing is not None:
            existing.draft = draft
            existing.writes += 1
            self._task_activity(existing)
            return WriteResult(draft.key, crm_id=existing.crm_id, created=False)
        crm_id = f"T{next(self._ids):08d}"
        self._tasks[draft.key] = StoredTask(crm_id, draft.key, draft)
        self._task_activity(self._tasks[draft.key])
        return WriteResult(draft.key, crm_id=crm_id, created=True)

    def _task_activity(self, task: StoredTask) -> None:
        """A task is an activity too (kind task, whatever its channel), keyed and stamped."""
        draft, now = task.draft, self.clock()
        old = self._activities.get(task.crm_id)
        completed_at = (old.completed_at if old and old.completed_at else now) \
            if task.completed else None
        self._activities[task.crm_id] = Activity(
            id=task.crm_id, kind=ActivityKind.TASK, at=completed_at or draft.remind_at,
            deal_id=draft.deal_id, account_id=draft.account_id,
            contact_ids=(draft.contact_id,) if draft.contact_id else (),
            owner_id=draft.owner_id, task_key=task.key,
            status="Completed" if task.completed else "Not Started",
            completed=task.completed, completed_at=completed_at, modified_at=now)


def replace_deal(deal: Deal, **changes: object) -> Deal:
    return deal.model_copy(update=changes)

