"""Writing, finding and closing follow-up Tasks through sObject Collections (200 per call).

Two key modes (reference §3.6):
- "upsert": the key lives in an External ID field on Task; `PATCH composite/sobjects/Task/<field>`
  creates or updates by key, so any repeat is absorbed.
- "marker": no such field; the key rides at the end of the Subject as `[wb:<key>]` (Subject is
  filterable, Description is not). Creating is not idempotent, so every batch first looks its
  keys up, creates only the missing ones and updates the rest; a retry after an answer that
  never came (timeout, 5xx) repeats the lookup before it re-sends anything.

TaskSubtype is create-only (§3.1): an upsert carrying it fails on an existing record with
INVALID_FIELD_FOR_INSERT_UPDATE and nothing is applied, so those records are re-sent without it
(and without Status, so a task the rep completed is not reopened). New tasks, the usual case,
cost one call per 200. Collections answer in request order (§3.4): results are matched to
keys by position, and a bad record fails alone (`allOrNone: false`). Per-record
UNABLE_TO_LOCK_ROW is retried for that record under the same retry policy.

Status and Priority values are the org's own (`picklists.TaskValues`, read from TaskStatus and
TaskPriority): its default open status on create, its closed status when closing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.errors import ConnectorError
from connectors.models import Channel, TaskDraft, TaskRef, TaskState, WriteResult
from connectors.salesforce import soql
from connectors.salesforce.client import Client
from connectors.salesforce.failures import PendingRecords, TransientError
from connectors.salesforce.picklists import TaskValues
from connectors.salesforce.records import parse_datetime
from connectors.salesforce.transport import scrub

BATCH = 200
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
RETRYABLE_ITEM_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
SUBTYPES = {Channel.EMAIL: "Email", Channel.CALL: "Call", Channel.TODO: "Task"}
Item = dict[str, Any]


def utc_iso(moment: datetime) -> str:
    """`2024-07-01T15:00:00.000Z`, the form Salesforce takes for datetimes (§3.1)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def marked_subject(subject: str, key: str) -> str | None:
    """The subject with the key marker at its end, the text trimmed to keep 255 characters;
    None if the marker alone does not fit."""
    tag = soql.marker(key)
    room = SUBJECT_MAX - len(tag) - 1
    if room < 0:
        return None
    text = subject[:room].rstrip()
    return f"{text} {tag}" if text else tag


def _errors(item: Item) -> list[dict[str, Any]]:
    errors = item.get("errors") or []
    return [e for e in errors if isinstance(e, dict)]


def _failure(key: str, item: Item, secrets: tuple[str, ...]) -> WriteResult:
    errors = _errors(item)
    first = errors[0] if errors else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN_ERROR")
    return WriteResult(key, error_code=code,
                       message=scrub(str(first.get("message") or ""), *secrets)[:500],
                       retryable=code in RETRYABLE_ITEM_CODES,
                       fields=tuple(str(f) for f in first.get("fields") or ()))


def _exists(item: Item) -> bool:
    """The upsert matched an existing task and refused the create-only TaskSubtype."""
    return any(e.get("statusCode") == "INVALID_FIELD_FOR_INSERT_UPDATE"
               and "TaskSubtype" in (e.get("fields") or [])
               for e in _errors(item))


class Batch:
    """Outcomes of one batch across attempts: final ones, and retryable ones to re-send."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self.done: dict[str, WriteResult] = {}
        self.later: dict[str, WriteResult] = {}

    def open(self) -> list[str]:
        return [k for k in self.keys if k not in self.done]

    def settle(self, key: str, result: WriteResult) -> None:
        if result.ok or not result.retryable:
            self.done[key] = result
            self.later.pop(key, None)
        else:
            self.later[key] = result

    def check(self) -> None:
        if self.open():
            raise PendingRecords(f"{len(self.open())} records to retry",
                                 code=next(iter(self.later.values())).error_code
                                 if self.later else None)

    def results(self) -> dict[str, WriteResult]:
        return {k: self.done.get(k) or self.later.get(k) or WriteResult(
            k, error_code="NOT_ANSWERED", message="no answer for this record", retryable=True)
            for k in self.keys}


class TaskWriter:
    def __init__(self, client: Client, key_field: str | None, values: TaskValues) -> None:
        self.client = client
        self.key_field = key_field  # None: marker mode
        self.values = values
        # After a create whose answer never came, the request may still be running on the
        # server: wait this long before the look-up that decides what to re-send.
        self.settle = min(client.settings.timeout, 10.0)

    # -- write ---------------------------------------------------------------------------
    def write(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        unique: dict[str, TaskDraft] = {}
        for draft in drafts:
            unique.setdefault(draft.key, draft)
        results: dict[str, WriteResult] = {}
        items = list(unique.values())
        # Marker mode: look every key up first, in as few queries as the URI limit allows.
        known = {} if self.key_field else self.find_marked(list(unique), retry=True)
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            results.update(self._upsert_batch(chunk) if self.key_field
                           else self._marker_batch(chunk, known))
        return [results[d.key] for d in drafts]

    def _fields(self, draft: TaskDraft, *, creating: bool, subject: str) -> Item:
        record: Item = {
            "attributes": {"type": "Task"},
            "Subject": subject,
            "Description": draft.body[:DESCRIPTION_MAX],
            "ActivityDate": draft.due_date.isoformat(),
            "ReminderDateTime": utc_iso(draft.remind_at),
            "IsReminderSet": True,
            "OwnerId": draft.owner_id,
            "WhatId": draft.deal_id,
        }
        priority = self.values.priority.get(draft.priority)
        if priority:  # an org without priorities: its default applies
            record["Priority"] = priority
        if draft.contact_id:
            record["WhoId"] = draft.contact_id
        if creating and self.values.open_status:
            record["Status"] = self.values.open_status
            record["TaskSubtype"] = SUBTYPES.get(draft.channel, "Task")
        if self.key_field:
            record[self.key_field] = draft.key
        return record

    def _send(self, endpoint: str, method: str, path: str, keys: list[str],
              records: list[Item]) -> list[tuple[str, Item]]:
        answer = self.client.call(
            endpoint, lambda sf: sf.restful(path, method=method,
                                            json={"allOrNone": False, "records": records}),
            items=len(records), retry=False)
        if not isinstance(answer, list) or len(answer) != len(keys):
            raise ConnectorError("collections answer does not match the request",
                                 connection=self.client.settings.name, endpoint=endpoint)
        return [(k, item if isinstance(item, dict) else {}) for k, item in zip(keys, answer,
                                                                                  strict=True)]

    def _run(self, endpoint: str, batch: Batch, attempt: Callable[[], None]
             ) -> dict[str, WriteResult]:
        with contextlib.suppress(PendingRecords):  # locked records keep a retryable result
            self.client.retrying(endpoint, attempt)
        return batch.results()

    def _upsert_batch(self, drafts: list[TaskDraft]) -> dict[str, WriteResult]:
        assert self.key_field is not None
        path = f"composite/sobjects/Task/{self.key_field}"
        secrets = self.client.secrets
        batch = Batch([d.key for d in drafts])
        existing: set[str] = set()

        def attempt() -> None:
            for updating in (False, True):
                group = [d for d in drafts if d.key not in batch.done
                         and (d.key in existing) == updating]
                if not group:
                    continue
                records = [self._fields(d, creating=not updating, subject=d.subject[:SUBJECT_MAX])
                           for d in group]
                for key, item in self._send("collections.upsert", "PATCH", path,
                                            [d.key for d in group], records):
                    if item.get("success") and item.get("id"):
                        batch.settle(key, WriteResult(key, crm_id=str(item["id"]),
                                                      created=bool(item.get("created",
                                                                            not updating))))
                    elif not updating and _exists(item):
                        existing.add(key)
                    else:
                        batch.settle(key, _failure(key, item, secrets))
            batch.check()

        return self._run("collections.upsert", batch, attempt)

    def _marker_batch(self, drafts: list[TaskDraft], known: dict[str, TaskRef]
                      ) -> dict[str, WriteResult]:
        secrets = self.client.secrets
        batch = Batch([d.key for d in drafts])
        subjects: dict[str, str] = {}
        for draft in drafts:
            subject = marked_subject(draft.subject, draft.key)
            if subject is None:
                batch.settle(draft.key, WriteResult(draft.key, error_code="KEY_TOO_LONG",
                                                    message="the key does not fit in Subject"))
            else:
                subjects[draft.key] = subject
        found = {d.key: known[d.key] for d in drafts if d.key in known}
        sent: set[str] = set()  # creates that may have been applied without an answer
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # look again: an earlier attempt may have created some
                unknown = [k for k in batch.open() if k not in found]
                found.update(self.find_marked(unknown, retry=False))
            create = [d for d in drafts if d.key not in batch.done and d.key not in found]
            if create:
                sent.update(d.key for d in create)
                records = [self._fields(d, creating=True, subject=subjects[d.key])
                           for d in create]
                try:
                    answer = self._send("collections.create", "POST", "composite/sobjects",
                                        [d.key for d in create], records)
                except TransientError as exc:
                    if exc.maybe_applied:  # let the server finish before we look again
                        exc.retry_after = max(exc.retry_after or 0.0, self.settle)
                    raise
                for key, item in answer:
                    if item.get("success") and item.get("id"):
                        batch.settle(key, WriteResult(key, crm_id=str(item["id"]), created=True))
                    else:
                        batch.settle(key, _failure(key, item, secrets))
                        sent.discard(key)
            update = []
            for draft in drafts:
                ref = found.get(draft.key)
                if ref is None or draft.key in batch.done:
                    continue
                if draft.key in sent:  # ours, from an attempt whose answer was lost
                    batch.settle(draft.key, WriteResult(draft.key, crm_id=ref.crm_id,
                                                        created=True))
                else:
                    update.append(draft)
            if update:
                records = [{**self._fields(d, creating=False, subject=subjects[d.key]),
                            "id": found[d.key].crm_id} for d in update]
                for key, item in self._send("collections.update", "PATCH", "composite/sobjects",
                                            [d.key for d in update], records):
                    if item.get("success"):
                        batch.settle(key, WriteResult(key, crm_id=found[key].crm_id,
                                                      created=False))
                    else:
                        batch.settle(key, _failure(key, item, secrets))
            batch.check()

        return self._run("collections.create", batch, attempt)

    # -- find ----------------------------------------------------------------------------
    def find(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        """Tasks already in the CRM for these keys, archived ones included (queryAll: Salesforce
        archives old closed activities, §1), deleted ones left out (an upsert recreates them)."""
        wanted = list(dict.fromkeys(keys))
        if not self.key_field:
            return self.find_marked(wanted, retry=True)
        field = self.key_field
        out: dict[str, TaskRef] = {}
        want = set(wanted)
        for chunk in soql.chunked(wanted, soql.in_list_cost):
            for row in self.client.query_all(soql.tasks_by_key(field, chunk),
                                             include_deleted=True):
                key = row.get(field)
                # IN is case-insensitive in SOQL; keys are not: keep exact matches only.
                if row.get("IsDeleted") or key not in want or key in out:
                    continue
                out[str(key)] = _ref(str(key), row)
        return out

    def find_marked(self, keys: Sequence[str], *, retry: bool) -> dict[str, TaskRef]:
        out: dict[str, TaskRef] = {}
        base = len(soql.tasks_by_marker([])) + 100
        for chunk in soql.chunked(list(keys), soql.marker_cost, base=base):
            rows = self.client.query_all(soql.tasks_by_marker(chunk), include_deleted=True,
                                         retry=retry)
            for row in rows:
                subject = str(row.get("Subject") or "")
                if row.get("IsDeleted"):
                    continue
                for key in chunk:  # LIKE is case-insensitive: match the marker exactly
                    if key not in out and soql.marker(key) in subject:
                        out[key] = _ref(key, row)
        return out

    def status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        """Completion of these tasks by id, in as few SOQL queries as the URI allows."""
        wanted = {soql.to18(i): i for i in dict.fromkeys(crm_ids) if soql.to18(i)}
        out: dict[str, TaskState] = {}
        for chunk in soql.chunked([str(i) for i in wanted], soql.in_list_cost):
            for row in self.client.query_all(soql.tasks_by_id(chunk), include_deleted=True):
                asked = wanted.get(str(row.get("Id")))
                if asked is None or row.get("IsDeleted"):
                    continue
                out[asked] = TaskState(asked, bool(row.get("IsClosed")),
                                       parse_datetime(row.get("CompletedDateTime")))
        return out

    # -- close ---------------------------------------------------------------------------
    def close(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        valid = []
        closed = self.values.closed_status
        for crm_id in dict.fromkeys(crm_ids):
            if closed is None:
                results[crm_id] = WriteResult(
                    crm_id, error_code="NO_CLOSED_STATUS",
                    message="the org has no closed Task status to close the task with: add "
                            "one (Setup > Object Manager > Task > Fields > Status)")
            elif soql.to18(crm_id) is None:
                results[crm_id] = WriteResult(crm_id, error_code="MALFORMED_ID",
                                              message="not a Salesforce id")
            else:
                valid.append(crm_id)
        for start in range(0, len(valid), BATCH):
            results.update(self._close_batch(valid[start:start + BATCH]))
        return [results[i] for i in crm_ids]

    def _close_batch(self, ids: list[str]) -> dict[str, WriteResult]:
        batch = Batch(ids)
        secrets = self.client.secrets

        def attempt() -> None:
            group = batch.open()
            records = [{"attributes": {"type": "Task"}, "id": i,
                        "Status": self.values.closed_status} for i in group]
            for crm_id, item in self._send("collections.update", "PATCH", "composite/sobjects",
                                           group, records):
                if item.get("success"):
                    batch.settle(crm_id, WriteResult(crm_id, crm_id=crm_id, created=False))
                else:
                    batch.settle(crm_id, _failure(crm_id, item, secrets))
            batch.check()

        return self._run("collections.update", batch, attempt)


def _ref(key: str, row: dict[str, Any]) -> TaskRef:
    owner = row.get("OwnerId")
    return TaskRef(key, str(row["Id"]), completed=bool(row.get("IsClosed")),
                   owner_id=str(owner) if owner else None)
