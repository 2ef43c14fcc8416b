"""Writing, finding and closing follow-up tasks (reference §3).

Two key modes, chosen by `ensure_setup` from the task key property:

- "upsert" (the property has `hasUniqueValue`): batch *create* with the key and the
  associations inline. HubSpot's batch upsert takes no associations (its input is id,
  idProperty, properties), so it would leave tasks unlinked from their deal; the unique
  property gives the same idempotency to a create: a key that exists comes back as a
  CONFLICT naming the existing id, which is the task's id. Any create may be retried.
- "create+search" (the property exists without uniqueness): search the keys first, then
  create the rest. After an answer that may hide a write (5xx, timeout, dropped connection)
  the keys are searched again before anything is re-sent; since search lags writes (§1.3) a
  miss there proves nothing, so the call then fails as retryable and the worker reconciles
  the rows after its search-lag grace.

Results are matched by `objectWriteTraceId` (= key) or the key property, never by position.
A batch HubSpot rejects whole (one 4xx naming the first bad input, hubspot-api-python#51) is
split so that only the bad records fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from connectors.base import HubSpotSettings
from connectors.errors import RetryableError
from connectors.hubspot.deals import chunks
from connectors.hubspot.failures import (
    ErrorBody,
    Rejected,
    TransientError,
    error_from_dict,
    property_problems,
    scrub,
)
from connectors.hubspot.mapping import (
    draft_targets,
    is_record_id,
    parse_datetime,
    task_associations,
    task_properties,
    valid_key,
)
from connectors.hubspot.transport import Transport
from connectors.models import Owner, TaskDraft, TaskRef, TaskState, WriteResult

KeyMode = Literal["upsert", "create+search"]
T = TypeVar("T")

WRITE_BATCH = 100
SEARCH_VALUES = 100  # values in one IN filter
_INPUT_INDEX = re.compile(r"inputs\[(\d+)\]")


class TaskWriter:
    def __init__(self, transport: Transport, settings: HubSpotSettings,
                 key_mode: Callable[[], KeyMode],
                 owners: Callable[[set[str]], Mapping[str, Owner]]) -> None:
        self._t = transport
        self._key = settings.key_property
        self._key_mode = key_mode
        self._owners = owners

    # -- the port ---------------------------------------------------------------------------
    def write(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        unique: dict[str, TaskDraft] = {}
        for draft in drafts:
            problem = _invalid(draft)
            if problem is not None:
                results.setdefault(draft.key, problem)
            elif draft.key not in unique and draft.key not in results:
                unique[draft.key] = draft
        if unique:
            # Deactivated users stay owners with archived=true, and deals keep pointing at
            # them: such a task would go to nobody (reference §4), so it fails here, with a
            # code the worker answers with its fallback owner.
            owners = self._owners({d.owner_id for d in unique.values()})
            for draft in list(unique.values()):
                owner = owners.get(draft.owner_id)
                if owner is not None and not owner.active:
                    results[draft.key] = WriteResult(
                        draft.key, error_code="INACTIVE_OWNER", fields=("owner_id",),
                        message=f"owner {draft.owner_id} is deactivated (archived) in HubSpot")
                    del unique[draft.key]
        if unique:
            mode = self._key_mode()
            for batch in _chunked(list(unique.values()), WRITE_BATCH):
                results.update(self._write_batch(batch, mode))
        return [results[d.key] for d in drafts]

    def find(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        wanted = [k for k in dict.fromkeys(keys) if valid_key(k)]
        if not wanted:
            return {}
        if self._key_mode() == "upsert":
            return self._read_by_key(wanted)
        return self._search(wanted)

    def close(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        wanted: list[str] = []
        for crm_id in dict.fromkeys(crm_ids):
            if is_record_id(crm_id):
                wanted.append(crm_id)
            else:
                results[crm_id] = WriteResult(crm_id, error_code="INVALID_ID",
                                              message="not a HubSpot record id")
        for batch in chunks(wanted, WRITE_BATCH):
            results.update(isolate(batch, self._complete, lambda i: i, _id_culprits))
        return [results[i] for i in crm_ids]

    # -- writing --------------------------------------------------------------------------------
    def _write_batch(self, batch: list[TaskDraft], mode: KeyMode) -> dict[str, WriteResult]:
        done: dict[str, WriteResult] = {}
        todo = batch
        if mode == "create+search":
            # A backstop against re-creating a key: the worker's ledger is the first guard, and
            # search may not show a task written moments ago (reference §1.3).
            for key, ref in self._search([d.key for d in batch]).items():
                done[key] = WriteResult(key, crm_id=ref.crm_id, created=False)
            todo = [d for d in batch if d.key not in done]
        done.update(isolate(todo, lambda b: self._create(b, mode), lambda d: d.key,
                            self._culprits))
        return done

    def _create(self, batch: list[TaskDraft], mode: KeyMode) -> dict[str, WriteResult]:
        api = self._t.api("crm.objects.tasks.batch_api")
        out: dict[str, WriteResult] = {}
        pending = batch
        while pending:
            body = {"inputs": [{"properties": task_properties(d, self._key),
                                "associations": task_associations(d),
                                "objectWriteTraceId": d.key} for d in pending]}
            try:
                data = self._t.call(
                    "tasks.batch.create", api.create_with_http_info, items=len(pending),
                    retry_ambiguous=mode == "upsert",
                    batch_input_simple_public_object_batch_input_for_create=body)
            except TransientError as exc:
                if mode == "upsert" or not exc.ambiguous:
                    raise
                out.update(self._after_ambiguous(pending, exc))
                return out
            except Rejected as exc:
                if mode != "upsert" or not self._is_key_conflict(exc.error):
                    raise
                # Conflicts reported for the whole batch (409, reference §3): find which keys
                # exist, take their ids, and create the others.
                existing = self._read_by_key([d.key for d in pending])
                if not existing:
                    raise
                out.update({k: WriteResult(k, crm_id=r.crm_id, created=False)
                            for k, r in existing.items()})
                pending = [d for d in pending if d.key not in existing]
                continue
            out.update(self._parse_created(pending, data, mode))
            return out
        return out

    def _after_ambiguous(self, pending: list[TaskDraft], exc: TransientError
                         ) -> dict[str, WriteResult]:
        found = self._search([d.key for d in pending])
        missing = [d.key for d in pending if d.key not in found]
        if missing:
            raise RetryableError(
                f"{len(missing)} of {len(pending)} task creates are unconfirmed after "
                f"'{exc.message}'; search may lag, so they are left for reconciliation",
                retry_after=exc.retry_after, connection=self._t.name,
                endpoint="tasks.batch.create", status=exc.status, code="UNCONFIRMED_WRITE")
        return {k: WriteResult(k, crm_id=r.crm_id, created=None) for k, r in found.items()}

    def _parse_created(self, pending: list[TaskDraft], data: Any, mode: KeyMode
                       ) -> dict[str, WriteResult]:
        keys = {d.key for d in pending}
        out: dict[str, WriteResult] = {}
        for raw in data.results or []:
            key = raw.object_write_trace_id or (raw.properties or {}).get(self._key)
            if key in keys:
                out[key] = WriteResult(key, crm_id=str(raw.id), created=True)
        for raw in getattr(data, "errors", None) or []:
            error = error_from_dict(raw.to_dict())
            key = self._error_key(error)
            if key not in keys:
                continue
            existing = error.context.get("existingId")
            if mode == "upsert" and self._is_key_conflict(error) and existing:
                out[key] = WriteResult(key, crm_id=existing[0], created=False)
            else:
                out[key] = failure(key, error)
        unanswered = [d.key for d in pending if d.key not in out]
        if unanswered:  # an answer naming neither the record nor its key: look them up
            found = self.find(unanswered)
            for key in unanswered:
                ref = found.get(key)
                out[key] = WriteResult(key, crm_id=ref.crm_id, created=None) if ref else \
                    WriteResult(key, error_code="NO_RESULT",
                                message="HubSpot's answer did not mention this task")
        return out

    def _error_key(self, error: ErrorBody) -> str | None:
        traces = error.context.get("objectWriteTraceId")
        if traces:
            return traces[0]
        if error.context.get("propertyName") == [self._key]:
            values = error.context.get("propertyValue")
            return values[0] if values else None
        return None

    def _is_key_conflict(self, error: ErrorBody) -> bool:
        return error.category == "CONFLICT" and \
            error.context.get("propertyName", [self._key]) == [self._key]

    def _culprits(self, exc: Rejected, batch: list[TaskDraft]) -> list[TaskDraft]:
        """Which drafts a whole-batch rejection is about ([] when it does not say)."""
        error = exc.error
        indexes = {int(i) for i in _INPUT_INDEX.findall(error.message)}
        if indexes:
            return [batch[i] for i in sorted(indexes) if i < len(batch)]
        key = self._error_key(error)
        if key is not None:
            return [d for d in batch if d.key == key]
        targets = set(error.context.get("toObjectId", []))
        if targets:
            return [d for d in batch if draft_targets(d) & targets]
        bad: list[TaskDraft] = []
        for item in property_problems(error.message):
            name, text = str(item.get("name", "")), str(item.get("message", ""))
            bad += [d for d in batch if d not in bad
                    and _mentions(text, task_properties(d, self._key).get(name))]
        return bad

    # -- reading and closing ------------------------------------------------------------------
    def _search(self, keys: list[str]) -> dict[str, TaskRef]:
        api = self._t.api("crm.objects.tasks.search_api")
        found: dict[str, TaskRef] = {}
        for part in chunks(keys, SEARCH_VALUES):
            after: str | None = None
            while True:
                body: dict[str, Any] = {
                    "filterGroups": [{"filters": [{"propertyName": self._key, "operator": "IN",
                                                   "values": part}]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": [self._key, "hs_task_status", "hubspot_owner_id"],
                    "limit": 200}
                if after:
                    body["after"] = after
                page = self._t.call("tasks.search", api.do_search_with_http_info, search=True,
                                    items=len(part), public_object_search_request=body)
                for raw in page.results or []:
                    ref = self._ref(raw)
                    if ref is not None:
                        found.setdefault(ref.key, ref)  # duplicates: the oldest id wins
                paging = getattr(page, "paging", None)
                after = getattr(getattr(paging, "next", None), "after", None)
                if not after:
                    break
        return found

    def _read_by_key(self, keys: list[str]) -> dict[str, TaskRef]:
        """Batch read by the unique key property: consistent, unlike search."""
        api = self._t.api("crm.objects.tasks.batch_api")
        found: dict[str, TaskRef] = {}
        for part in chunks(keys, WRITE_BATCH):
            data = self._t.call("tasks.batch.read", api.read_with_http_info, items=len(part),
                                batch_read_input_simple_public_object_id={
                                    "inputs": [{"id": k} for k in part], "idProperty": self._key,
                                    "properties": [self._key, "hs_task_status",
                                                   "hubspot_owner_id"],
                                    "propertiesWithHistory": []})
            for raw in data.results or []:
                ref = self._ref(raw)
                if ref is not None:
                    found[ref.key] = ref
        return found

    def status(self, crm_ids: Sequence[str]) -> dict[str, TaskState]:
        """Completion of these tasks by id: batch read (100 a call), archived ones left out."""
        api = self._t.api("crm.objects.tasks.batch_api")
        found: dict[str, TaskState] = {}
        wanted = list(dict.fromkeys(crm_ids))
        for part in chunks(wanted, WRITE_BATCH):
            data = self._t.call("tasks.batch.read", api.read_with_http_info, items=len(part),
                                batch_read_input_simple_public_object_id={
                                    "inputs": [{"id": i} for i in part],
                                    "properties": ["hs_task_status", "hs_task_completion_date"],
                                    "propertiesWithHistory": []})
            for raw in data.results or []:
                props = raw.properties or {}
                crm_id = str(raw.id)
                if crm_id in part:
                    found[crm_id] = TaskState(
                        crm_id, props.get("hs_task_status") == "COMPLETED",
                        parse_datetime(props.get("hs_task_completion_date")))
        return found

    def _ref(self, raw: Any) -> TaskRef | None:
        props = raw.properties or {}
        key = props.get(self._key)
        if not key:
            return None
        return TaskRef(key=str(key), crm_id=str(raw.id),
                       completed=props.get("hs_task_status") == "COMPLETED",
                       owner_id=props.get("hubspot_owner_id"))

    def _complete(self, batch: list[str]) -> dict[str, WriteResult]:
        api = self._t.api("crm.objects.tasks.batch_api")
        data = self._t.call("tasks.batch.update", api.update_with_http_info, items=len(batch),
                            batch_input_simple_public_object_batch_input={"inputs": [
                                {"id": i, "properties": {"hs_task_status": "COMPLETED"}}
                                for i in batch]})
        out = {str(r.id): WriteResult(str(r.id), crm_id=str(r.id), created=False)
               for r in data.results or [] if str(r.id) in batch}
        for raw in getattr(data, "errors", None) or []:
            error = error_from_dict(raw.to_dict())
            for crm_id in error.context.get("ids", []):
                out[crm_id] = failure(crm_id, error)
        for crm_id in batch:
            out.setdefault(crm_id, WriteResult(crm_id, error_code="NO_RESULT",
                                               message="HubSpot's answer did not mention it"))
        return out


def isolate(items: list[T], send: Callable[[list[T]], dict[str, WriteResult]],
            key_of: Callable[[T], str], culprits: Callable[[Rejected, list[T]], list[T]]
            ) -> dict[str, WriteResult]:
    """Send `items` as one batch; when HubSpot rejects the whole batch, fail the records the
    error names (or, when it names none, split the batch in halves) and send the rest again,
    until only bad records are left out. One call when nothing is wrong."""
    results: dict[str, WriteResult] = {}
    stack = [items]
    while stack:
        batch = stack.pop()
        if not batch:
            continue
        try:
            results.update(send(batch))
            continue
        except Rejected as exc:
            bad = culprits(exc, batch) or (batch if len(batch) == 1 else [])
            if bad:
                for item in bad:
                    results[key_of(item)] = failure(key_of(item), exc.error)
                stack.append([i for i in batch if all(i is not b for b in bad)])
            else:
                middle = len(batch) // 2
                stack += [batch[middle:], batch[:middle]]
    return results


def failure(key: str, error: ErrorBody) -> WriteResult:
    """A record HubSpot refused: the property problem's own code (e.g. INVALID_OWNER_ID)
    when the message carries one, else the subCategory or category."""
    problems = property_problems(error.message)
    code = next((str(p["error"]) for p in problems if p.get("error")), None) \
        or error.code or "REJECTED"
    fields = tuple(str(p["name"]) for p in problems if p.get("name"))
    message = "; ".join(str(p.get("message", "")) for p in problems) or error.message
    return WriteResult(key, error_code=code, message=scrub(message), retryable=False,
                       fields=fields)


def _id_culprits(exc: Rejected, batch: list[str]) -> list[str]:
    indexes = {int(i) for i in _INPUT_INDEX.findall(exc.error.message)}
    named = set(exc.error.context.get("ids", []))
    return [b for n, b in enumerate(batch) if n in indexes or b in named]


def _mentions(text: str, value: str | None) -> bool:
    return bool(value) and re.search(rf"(?<![\w-]){re.escape(value or '')}(?![\w-])",
                                     text) is not None


def _invalid(draft: TaskDraft) -> WriteResult | None:
    if not valid_key(draft.key):
        return WriteResult(str(draft.key), error_code="INVALID_KEY",
                           message="a task key must be 1-255 printable characters")
    bad = [name for name, value in (("deal_id", draft.deal_id), ("contact_id", draft.contact_id),
                                    ("account_id", draft.account_id))
           if value is not None and not is_record_id(value)]
    if not is_record_id(draft.owner_id):
        if not bad:
            return WriteResult(draft.key, error_code="INVALID_OWNER_ID", fields=("owner_id",),
                               message=f"{draft.owner_id!r} is not a HubSpot owner id")
        bad.append("owner_id")
    if bad:
        return WriteResult(draft.key, error_code="INVALID_ID", fields=tuple(bad),
                           message=f"not HubSpot record ids: {', '.join(bad)}")
    if draft.remind_at.tzinfo is None:
        return WriteResult(draft.key, error_code="INVALID_TIME", fields=("remind_at",),
                           message="remind_at needs a time zone")
    return None


def _chunked(items: list[TaskDraft], size: int) -> list[list[TaskDraft]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
