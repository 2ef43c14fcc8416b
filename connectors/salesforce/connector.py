"""`SalesforceConnector`: the CRM port over the Salesforce REST API, through simple-salesforce.

    connector.py   the port's methods and `ensure_setup`
    client.py      login, the call discipline (budget guard, bounded re-login, one retry
                   policy, crm.call records), paged queries
    transport.py   the requests.Session every request goes through (login host, timeout,
                   traces, Sforce-Limit-Info)
    failures.py    Salesforce errors -> connectors.errors
    soql.py        query text, name and id checks, URI-sized chunks
    records.py     JSON records -> Deal / Owner / Contact
    deals.py       the incremental pull and deals by id
    bulk.py        big pulls through a Bulk API 2.0 query job (sf.bulk2), CSV -> records
    activities.py  changed Tasks and Events (calls, emails, to-dos, meetings)
    people.py      stakeholders and owners
    tasks.py       writing, finding and closing tasks (sObject Collections)
    picklists.py   the org's task statuses and priorities (TaskStatus, TaskPriority)
    setup.py       set-up checks: deal fields, Task fields and picklist values
    login.py       the login flows (jwt, client_credentials; legacy password, soap)
    login_checks.py  doctor's checks of the login flow and the API version
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from simple_salesforce.bulk2 import Operation

from connectors.base import (
    ActivityPage,
    ApiUsage,
    CallObserver,
    DealPage,
    SalesforceSettings,
    SetupCheck,
    SetupReport,
)
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConnectorError,
    PermissionDenied,
    SetupError,
)
from connectors.models import (
    ActivityKind,
    Channel,
    Contact,
    Deal,
    Owner,
    TaskDraft,
    TaskRef,
    TaskState,
    WriteResult,
)
from connectors.salesforce import (
    activities,
    bulk,
    deals,
    login_checks,
    people,
    picklists,
    setup,
    soql,
)
from connectors.salesforce.client import Client
from connectors.salesforce.picklists import TaskValues
from connectors.salesforce.tasks import TaskWriter

KeyMode = Literal["upsert", "marker"]
PROBE_QUERY = "SELECT Id FROM Opportunity LIMIT 1"  # doctor's Bulk check: a one-row job


def key_field_fix(name: str) -> str:
    return f"create a Text(80) External ID + Unique field {name} on Activity"


class SalesforceConnector:
    """One Salesforce org. `account_contacts_fallback`: deals without contact roles get their
    account's contacts as stakeholders (off by default: the port's contract is the deal's own
    contacts)."""

    kind = "salesforce"
    write_batch = 200  # sObject Collections take 200 records per call (reference §3.4)
    lookup_lag = timedelta(0)  # SOQL sees a committed Task at once, marker mode included
    sees_deleted_activities = True  # queryAll returns deleted Tasks/Events, IsDeleted true

    def __init__(self, settings: SalesforceSettings, *, observer: CallObserver | None = None,
                 account_contacts_fallback: bool = True, retry_budget: float = 20.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self.account_contacts_fallback = account_contacts_fallback
        self._fields = soql.DealFields.from_names(settings.fields)
        problems = list(self._fields.problems)
        key = settings.task_key_field
        if key is not None and not soql.valid_field_name(key):
            problems.append(f"task_key_field = {key!r} is not a Salesforce field API name")
        self._problems = tuple(problems)
        self._client = Client(settings, observer, retry_budget=retry_budget, clock=clock)
        self._client.field_hint = self._fields.hint()
        self._writer: TaskWriter | None = None
        self._values: TaskValues | None = None
        self._value_rows: picklists.Rows | None = None
        self._key_mode: KeyMode | None = None  # as the last ensure_setup found it
        self._types: dict[str, str] | None = None
        self._opportunity: dict[str, dict[str, Any]] | None = None  # set-up's describe
        self.bulk = bulk.BulkPolicy(settings.name, settings.bulk_threshold, settings.bulk_poll,
                                    self._bulk_types)

    @property
    def calls_made(self) -> int:
        """HTTP requests made so far, retries and logins included."""
        return self._client.transport.calls_made

    # -- set-up ----------------------------------------------------------------------------
    def _check_config(self) -> None:
        """Field names ops typed cannot be escaped in SOQL: refuse bad ones before any call."""
        if self._problems:
            error = SetupError("; ".join(self._problems), connection=self.name,
                               endpoint="config")
            error.fix = "correct the field names in the connection's config"
            raise error

    def _describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        described = self._client.call(f"describe.{sobject}",
                                      lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
        return setup.by_name(described)

    def _bulk_types(self) -> dict[str, str]:
        """Column types for Bulk CSV rows: the standard fields the pull selects, and the
        configured ones from the Opportunity describe (the set-up check's, or one call, only
        if any is configured, once per connector), so a Bulk pull yields the same values as
        REST's JSON."""
        if self._types is None:
            types = dict(bulk.STANDARD_TYPES)
            configured = self._fields.configured()
            if configured:
                described = self._opportunity or self._describe("Opportunity")
                for name in configured:
                    entry = described.get(name.lower())
                    if entry is not None and entry.get("type"):
                        types[name.lower()] = str(entry["type"])
            self._types = types
        return self._types

    def _task_values(self) -> TaskValues:
        """The org's task statuses and priorities: read once per connector (two queries)."""
        if self._values is None:
            self._value_rows = picklists.load_rows(self._client)
            self._values = picklists.task_values(*self._value_rows)
        return self._values

    def _key_check(self, task_fields: dict[str, dict[str, Any]]
                   ) -> tuple[KeyMode, SetupCheck]:
        name = self.settings.task_key_field
        if not name:
            return "marker", SetupCheck(
                "task key field", False, "no task_key_field configured: task keys are kept as "
                "a [wb:<key>] marker in the Subject (each write looks keys up first)",
                key_field_fix("Winback_Key__c") + ", then set task_key_field: Winback_Key__c")
        found = task_fields.get(name.lower())
        if found is not None and found.get("externalId"):
            unique = "unique" if found.get("unique") else "NOT unique: make it Unique"
            return "upsert", SetupCheck("task key field", True,
                                        f"Task.{found.get('name', name)} is an External ID "
                                        f"({unique}); tasks are upserted by key")
        state = "is not an External ID" if found is not None else "does not exist on Task"
        return "marker", SetupCheck(
            "task key field", False, f"{name} {state}: falling back to a Subject marker",
            key_field_fix(name))

    def _deal_checks(self) -> list[SetupCheck]:
        if self._problems:
            return [SetupCheck("deal fields", False, "; ".join(self._problems),
                               "correct the field names in the connection's config")]
        if not self._fields.configured():
            return [SetupCheck("deal fields", True, "none configured")]
        try:
            opportunity = self._opportunity = self._describe("Opportunity")
        except ConnectorError as exc:
            return [SetupCheck("deal fields", False, f"Opportunity describe failed: {exc}",
                               getattr(exc, "fix", "") or "check the integration user's "
                               "access to Opportunity")]
        return setup.deal_field_checks(self._fields, opportunity)

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        """Describe Task (logging in first if needed) and Opportunity, and read the org's task
        statuses and priorities: four calls, once per process. Salesforce fields cannot be
        created through the REST API, so `create` changes nothing: each missing or unusable
        field or picklist value is a failed check with its fix."""
        try:
            task_fields = self._describe("Task")
        except AuthError as exc:
            return SetupReport([SetupCheck("login", False, str(exc), exc.fix)],
                               key_mode="marker")
        except PermissionDenied as exc:
            return SetupReport([SetupCheck("task access", False, str(exc), exc.fix)],
                               key_mode="marker")
        checks = [self._login_check(), *self._deal_checks()]
        mode, key_check = self._key_check(task_fields)
        checks.append(key_check)
        subject = task_fields.get("subject", {})
        if mode == "marker" and not subject.get("filterable", True):
            checks.append(SetupCheck("task subject", False, "Task.Subject is not filterable, "
                                     "so keys cannot be found", "use an External ID key field"))
        valid_key = self.settings.task_key_field if mode == "upsert" else None
        checks.append(setup.task_field_check(task_fields, valid_key))
        try:
            values = self._task_values()
        except ConnectorError as exc:
            checks.append(SetupCheck("task picklists", False, "could not read TaskStatus / "
                                     f"TaskPriority: {exc}", getattr(exc, "fix", "")
                                     or "check the integration user's API access"))
        else:
            checks.append(setup.picklist_check(task_fields, values, tuple(Channel)))
            self._writer = TaskWriter(self._client, valid_key, values)
            self._key_mode = mode
        return SetupReport(checks, key_mode=mode)

    def _setup_identity(self) -> dict[str, Any]:
        """The configuration a kept setup was learned under."""
        return {"key_field": self.settings.task_key_field,
                "fields": [list(pair) for pair in self._fields.settings()]}

    def setup_state(self) -> dict[str, Any] | None:
        """The key mode and the org's task picklist rows (what the writes use)."""
        if self._key_mode is None or self._value_rows is None or self._problems:
            return None
        return {"crm": self.kind, "config": self._setup_identity(), "key_mode": self._key_mode,
                "status_rows": self._value_rows[0], "priority_rows": self._value_rows[1]}

    def restore_setup(self, state: Mapping[str, Any]) -> bool:
        if self._problems or state.get("crm") != self.kind \
                or state.get("config") != self._setup_identity():
            return False
        mode = state.get("key_mode")
        status, priority = state.get("status_rows"), state.get("priority_rows")
        if mode not in ("upsert", "marker") or not isinstance(status, list) \
                or not isinstance(priority, list):
            return False
        self._value_rows = (status, priority)
        self._values = picklists.task_values(status, priority)
        self._key_mode = mode
        valid_key = self.settings.task_key_field if mode == "upsert" else None
        self._writer = TaskWriter(self._client, valid_key, self._values)
        return True

    # -- doctor's login checks (not part of ensure_setup, which stays at one call) -------------
    def login_checks(self) -> Iterator[SetupCheck]:
        """The login flow in use (a legacy one passes with a warning and the way off it), then
        whether the org offers the configured api_version (one call, logging in first)."""
        yield login_checks.flow_check(self.settings)
        offered = self._client.call("versions", login_checks.fetch_versions)
        yield login_checks.version_check(self.settings.api_version, offered)

    def access_checks(self) -> Iterator[SetupCheck]:
        """Whether Bulk API 2.0 query jobs are allowed (bulk_check)."""
        yield self.bulk_check()

    def bulk_check(self) -> SetupCheck:
        """Whether big pulls may use Bulk API 2.0 (doctor runs it last): a one-row query job
        is created and aborted (two calls). Refused (403), it passes with a warning: pulls
        fall back to REST."""
        threshold = self.settings.bulk_threshold
        if threshold is None:
            return SetupCheck("bulk api", True, "off (bulk_threshold: null): every pull uses "
                              "REST, about one call per 1,000 rows")
        try:
            job = self._client.call("bulk2.create", lambda sf: bulk.jobs(
                sf, "Opportunity").create_job(Operation.query, PROBE_QUERY))
        except PermissionDenied as exc:
            self.bulk.refuse(exc.message)
            return SetupCheck(
                "bulk api", True, f"Bulk API 2.0 refused ({exc.message}): pulls of more than "
                f"{threshold:,} rows fall back to REST (about one call per 1,000 rows)",
                "give the integration user's profile or permission set the API Enabled "
                "permission and Bulk API access, or set bulk_threshold: null", warn=True)
        except AuthError:
            raise
        except BudgetExhausted as exc:  # doctor's "API budget" line says what to do
            return SetupCheck("bulk api", True, f"not checked: {exc}", warn=True)
        except ConnectorError as exc:
            return SetupCheck("bulk api", True, f"could not create a Bulk API 2.0 query job "
                              f"({exc}): big pulls will try it and fall back to REST if "
                              "refused", "check the integration user's API permissions",
                              warn=True)
        with contextlib.suppress(ConnectorError):  # already done: nothing to stop
            self._client.call("bulk2.job", lambda sf: bulk.jobs(sf, "Opportunity").abort_job(
                str(job["id"]), True), retry=False)
        return SetupCheck("bulk api", True, f"allowed: pulls of more than {threshold:,} rows "
                          "use a Bulk API 2.0 query job")

    def _login_check(self) -> SetupCheck:
        who = self.settings.auth.username or "the app's run-as user"
        return SetupCheck("login", True, f"logged in as {who} ({self._client.instance_host})")

    def _tasks(self) -> TaskWriter:
        if self._writer is None:
            mode, _ = self._key_check(self._describe("Task"))
            key = self.settings.task_key_field if mode == "upsert" else None
            self._writer = TaskWriter(self._client, key, self._task_values())
        return self._writer

    # -- the port --------------------------------------------------------------------------
    def begin_run(self, run_id: str | None, guard: Callable[[], None] | None = None) -> None:
        self._client.transport.set_run(run_id, guard)

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        self._check_config()
        return deals.changed_deals(self._client, self._fields, since, self.bulk)

    def changed_activities(self, since: datetime, kinds: frozenset[ActivityKind]
                           ) -> Iterator[ActivityPage]:
        """Tasks and Events changed since `since`: one SOQL query each (Task only when a Task
        kind is asked for, Event only for meetings), 1,000 rows a REST page."""
        self._check_config()
        if not kinds:
            return iter(())
        return activities.changed_activities(self._client, since, kinds,
                                             self._tasks().key_field)

    def missing_activities(self, ids: Mapping[str, ActivityKind]) -> set[str]:
        """None, without a call: `changed_activities` flags deleted rows (queryAll)."""
        return set()

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        self._check_config()
        return deals.deals_by_id(self._client, self._fields, ids)

    def every_deal(self, tracked: int) -> Iterator[list[Deal]] | None:
        """For the daily re-read of `tracked` deals: every Opportunity of the org through one
        Bulk API 2.0 query job when `tracked` is above bulk_threshold and Bulk is allowed (a
        deal missing from it is gone); None otherwise: re-read them by id (`deals_by_id`,
        about 200 a call)."""
        self._check_config()
        if not self.bulk.wants(tracked):
            return None
        return deals.every_deal(self._client, self._fields, self.bulk)

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        self._check_config()
        return people.stakeholders(self._client, deal_ids,
                                   account_fallback=self.account_contacts_fallback)

    def owners(self) -> list[Owner]:
        self._check_config()
        return people.owners(self._client)

    def write_tasks(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        self._check_config()
        return self._tasks().write(drafts) if drafts else []

    def find_tasks(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        self._check_config()
        return self._tasks().find(keys) if keys else {}

    def task_status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        self._check_config()
        return self._tasks().status(crm_ids) if crm_ids else {}

    def close_tasks(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        self._check_config()
        return self._tasks().close(crm_ids) if crm_ids else []

    def api_usage(self) -> ApiUsage | None:
        return self._client.usage()

    def close(self) -> None:
        self._client.close()

    @property
    def key_mode(self) -> KeyMode | None:
        """How task keys are kept, once known (after `ensure_setup` or the first task call)."""
        if self._writer is None:
            return None
        return "upsert" if self._writer.key_field else "marker"
