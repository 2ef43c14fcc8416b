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
    people.py      stakeholders and owners
    tasks.py       writing, finding and closing tasks (sObject Collections)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from connectors.base import (
    ApiUsage,
    CallObserver,
    DealPage,
    SalesforceSettings,
    SetupCheck,
    SetupReport,
)
from connectors.errors import AuthError, PermissionDenied, SetupError
from connectors.models import Contact, Deal, Owner, TaskDraft, TaskRef, WriteResult
from connectors.salesforce import deals, people, soql
from connectors.salesforce.client import Client
from connectors.salesforce.tasks import TaskWriter

KeyMode = Literal["upsert", "marker"]


def key_field_fix(name: str) -> str:
    return f"create a Text(80) External ID + Unique field {name} on Activity"


class SalesforceConnector:
    """One Salesforce org. `account_contacts_fallback`: deals without contact roles get their
    account's contacts as stakeholders (off by default: the port's contract is the deal's own
    contacts)."""

    kind = "salesforce"
    write_batch = 200  # sObject Collections take 200 records per call (reference §3.4)
    lookup_lag = timedelta(0)  # SOQL sees a committed Task at once, marker mode included

    def __init__(self, settings: SalesforceSettings, *, observer: CallObserver | None = None,
                 account_contacts_fallback: bool = True) -> None:
        self.name = settings.name
        self.settings = settings
        self.account_contacts_fallback = account_contacts_fallback
        self._fields = soql.DealFields.from_names(settings.fields)
        problems = list(self._fields.problems)
        key = settings.task_key_field
        if key is not None and not soql.valid_field_name(key):
            problems.append(f"task_key_field = {key!r} is not a Salesforce field API name")
        self._problems = tuple(problems)
        self._client = Client(settings, observer)
        self._client.field_hint = self._fields.hint()
        self._writer: TaskWriter | None = None

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

    def _describe_task(self) -> dict[str, dict[str, Any]]:
        described = self._client.call("describe.Task",
                                      lambda sf: sf.restful("sobjects/Task/describe"))
        fields = described.get("fields") if isinstance(described, dict) else None
        return {str(f.get("name", "")).lower(): f for f in fields or [] if isinstance(f, dict)}

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

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        """One call: describe Task (logging in first if needed). Salesforce fields cannot be
        created through the REST API, so `create` changes nothing: a missing field is
        reported with the fix. The configured Opportunity fields are checked by name here
        and for existence by the first pull (INVALID_FIELD -> SetupError naming the field),
        which keeps this at one API call."""
        checks: list[SetupCheck] = []
        configured = ", ".join(self._fields.configured()) or "none"
        if self._problems:
            checks.append(SetupCheck("deal fields", False, "; ".join(self._problems),
                                     "correct the field names in the connection's config"))
        else:
            checks.append(SetupCheck("deal fields", True, f"configured: {configured}; a missing "
                                     "one stops the first pull with SetupError naming it"))
        try:
            task_fields = self._describe_task()
        except AuthError as exc:
            return SetupReport([SetupCheck("login", False, str(exc), exc.fix), *checks],
                               key_mode="marker")
        except PermissionDenied as exc:
            return SetupReport([SetupCheck("task access", False, str(exc), exc.fix), *checks],
                               key_mode="marker")
        checks.insert(0, SetupCheck("login", True, f"logged in as {self.settings.username} "
                                    f"({self._client.instance_host})"))
        mode, key_check = self._key_check(task_fields)
        checks.append(key_check)
        subject = task_fields.get("subject", {})
        if mode == "marker" and not subject.get("filterable", True):
            checks.append(SetupCheck("task subject", False, "Task.Subject is not filterable, "
                                     "so keys cannot be found", "use an External ID key field"))
        valid_key = self.settings.task_key_field if mode == "upsert" else None
        self._writer = TaskWriter(self._client, valid_key)
        return SetupReport(checks, key_mode=mode)

    def _tasks(self) -> TaskWriter:
        if self._writer is None:
            mode, _ = self._key_check(self._describe_task())
            key = self.settings.task_key_field if mode == "upsert" else None
            self._writer = TaskWriter(self._client, key)
        return self._writer

    # -- the port --------------------------------------------------------------------------
    def begin_run(self, run_id: str | None) -> None:
        self._client.transport.set_run(run_id)

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        self._check_config()
        return deals.changed_deals(self._client, self._fields, since)

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        self._check_config()
        return deals.deals_by_id(self._client, self._fields, ids)

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
