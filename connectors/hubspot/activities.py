"""Reading activities: the engagement objects (tasks, calls, meetings, emails, notes), each
searched on `hs_lastmodifieddate` (ascending, 200 a page), merged oldest change first, with
their deal / company / contact links read in v4 association batches of up to 1,000 ids
(a page holds up to 1,000 activities per object searched).

Only the objects the kinds need are searched: an idle read costs one search per object.
Search reaches 10,000 results per query (reference §0), so before the offset would pass that
a query restarts from the newest stamp seen, skipping ids already handed out at that stamp; a
window of 10,000 rows sharing one stamp is walked by `hs_object_id` instead. Each page is
re-read from a few rows back, as for deals, so a record changed during the read cannot push
another past the cursor. Search leaves archived (deleted) records out, so a deleted
engagement stops appearing rather than coming back flagged: `missing` asks for ids read
earlier with a v3 batch read of their object (100 ids a call), where an archived id is left
out of `results` and named in a 207 `OBJECT_NOT_FOUND` error (reference §1.3).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.base import ActivityPage
from connectors.hubspot.mapping import EPOCH, epoch_ms, parse_datetime
from connectors.hubspot.transport import Transport
from connectors.models import Activity, ActivityKind

PAGE = 200  # search `limit` maximum
SEARCH_CAP = 10_000  # results one search query can reach
OVERLAP = 5  # rows each search page re-reads from the one before
ASSOC_BATCH = 1_000  # v4 association batch read inputs (reference §0)
READ_BATCH = 100  # v3 batch read inputs (reference §0)
NO_ASSOCIATIONS = "NO_ASSOCIATIONS_FOUND"
OBJECTS = {ActivityKind.TASK: "tasks", ActivityKind.CALL: "calls",
           ActivityKind.MEETING: "meetings", ActivityKind.EMAIL: "emails",
           ActivityKind.NOTE: "notes"}
COMMON = ("hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate", "hs_createdate")
PROPERTIES = {"tasks": ("hs_task_status", "hs_task_completion_date", "hs_task_type"),
              "calls": ("hs_call_status", "hs_call_direction"),
              "meetings": ("hs_meeting_start_time", "hs_meeting_outcome"),
              "emails": ("hs_email_direction",), "notes": ()}
Row = tuple[int, int, str, dict[str, Any]]  # (hs_lastmodifieddate ms, id, object, properties)


class ActivityReader:
    search_cap = SEARCH_CAP

    def __init__(self, transport: Transport, key_property: str) -> None:
        self._t = transport
        self._key = key_property

    def changed(self, since: datetime, kinds: frozenset[ActivityKind]
                ) -> Iterator[ActivityPage]:
        if since.tzinfo is None:
            raise ValueError("since needs a time zone")
        objects = [OBJECTS[k] for k in ActivityKind if k in kinds]
        streams = [self._stream(o, epoch_ms(since)) for o in objects]
        # A page holds up to 1,000 of each object: its links are read in full v4 batches.
        page_size = ASSOC_BATCH * max(len(objects), 1)
        batch: list[Row] = []
        for row in heapq.merge(*streams, key=lambda r: (r[0], r[1])):
            batch.append(row)
            if len(batch) >= page_size:
                yield self._page(batch)
                batch = []
        if batch:
            yield self._page(batch)

    def missing(self, ids: Mapping[str, ActivityKind]) -> set[str]:
        """Of these engagements (id -> kind) read earlier, those HubSpot no longer has
        (archived, or never existed): one batch read per object and 100 ids."""
        gone: set[str] = set()
        for kind in ActivityKind:
            object_type = OBJECTS[kind]
            wanted = sorted({i for i, k in ids.items() if k is kind}, key=_numeric)
            api = self._t.api(f"crm.objects.{object_type}.batch_api")
            for start in range(0, len(wanted), READ_BATCH):
                chunk = wanted[start:start + READ_BATCH]
                data = self._t.call(
                    f"{object_type}.batch.read", api.read_with_http_info, items=len(chunk),
                    batch_read_input_simple_public_object_id={
                        "inputs": [{"id": i} for i in chunk],
                        "properties": ["hs_object_id"], "propertiesWithHistory": []})
                found = {str(raw.id) for raw in data.results or []}
                gone |= {i for i in chunk if i not in found}
        return gone

    # -- search ---------------------------------------------------------------------------
    def _properties(self, object_type: str) -> list[str]:
        extra = (self._key,) if object_type == "tasks" else ()
        return [*COMMON, *PROPERTIES[object_type], *extra]

    def _stream(self, object_type: str, bound: int) -> Iterator[Row]:
        """Every object of this type modified at or after `bound` (ms), ascending. Each page
        is re-read from `OVERLAP` rows back (rows already served are skipped): an object
        modified during the read leaves the result set behind the cursor and shifts every
        later row one place left, which would otherwise skip a row."""
        seen_at_top: set[int] = set()
        while True:
            after, top = 0, bound
            last_page: dict[int, int] = {}
            while True:
                page = self._search(object_type, [_filter("hs_lastmodifieddate", "GTE", bound)],
                                    "hs_lastmodifieddate", after)
                served: dict[int, int] = {}
                for raw in page.results or []:
                    row = _row(object_type, raw)
                    served[row[1]] = row[0]
                    if last_page.get(row[1]) == row[0] or (
                            row[0] == bound and row[1] in seen_at_top):
                        continue
                    if row[0] > top:
                        top, seen_at_top = row[0], set()
                    seen_at_top.add(row[1])
                    yield row
                last_page = served
                nxt = _next_after(page)
                if nxt is None:
                    return
                after = max(int(nxt) - OVERLAP, after + 1)
                if after + PAGE > self.search_cap:
                    break
            if top > bound:
                bound = top
                continue
            yield from self._same_stamp(object_type, bound, seen_at_top)
            bound, seen_at_top = bound + 1, set()

    def _same_stamp(self, object_type: str, stamp: int, seen: set[int]) -> Iterator[Row]:
        last = 0
        while True:
            page = self._search(object_type, [_filter("hs_lastmodifieddate", "EQ", stamp),
                                              _filter("hs_object_id", "GT", last)],
                                "hs_object_id", 0)
            rows = [_row(object_type, raw) for raw in page.results or []]
            if not rows:
                return
            last = max(r[1] for r in rows)
            yield from (r for r in rows if r[1] not in seen)
            if _next_after(page) is None:
                return

    def _search(self, object_type: str, filters: list[dict[str, str]], sort: str,
                after: int) -> Any:
        api = self._t.api(f"crm.objects.{object_type}.search_api")
        body: dict[str, Any] = {"filterGroups": [{"filters": filters}],
                                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                                "properties": self._properties(object_type), "limit": PAGE}
        if after:
            body["after"] = str(after)
        return self._t.call(f"{object_type}.search", api.do_search_with_http_info,
                            search=True, public_object_search_request=body)

    # -- building -------------------------------------------------------------------------
    def _page(self, rows: list[Row]) -> ActivityPage:
        links: dict[tuple[str, str], dict[str, list[str]]] = {}
        for object_type in dict.fromkeys(r[2] for r in rows):
            ids = [str(r[1]) for r in rows if r[2] == object_type]
            for to_type in ("deals", "companies", "contacts"):
                for from_id, targets in self._associations(object_type, to_type, ids).items():
                    links.setdefault((object_type, from_id), {})[to_type] = targets
        activities = [_activity(r, links.get((r[2], str(r[1])), {}), self._key) for r in rows]
        return ActivityPage(activities, EPOCH + timedelta(milliseconds=max(r[0] for r in rows)))

    def _associations(self, from_type: str, to_type: str, ids: list[str]
                      ) -> dict[str, list[str]]:
        api = self._t.api("crm.associations.v4.batch_api")
        out: dict[str, list[str]] = {}
        pending: list[dict[str, str]] = [{"id": i} for i in ids]
        while pending:
            batch, pending = pending[:ASSOC_BATCH], pending[ASSOC_BATCH:]
            data = self._t.call(
                "associations.v4.batch.read", api.get_page_with_http_info, items=len(batch),
                from_object_type=from_type, to_object_type=to_type,
                batch_input_public_fetch_associations_batch_request={"inputs": batch})
            for result in data.results or []:
                targets = out.setdefault(str(result._from.id), [])
                targets += [str(t.to_object_id) for t in result.to or []
                            if str(t.to_object_id) not in targets]
                cursor = _next_after(result)
                if cursor:
                    pending.append({"id": str(result._from.id), "after": cursor})
            # an activity with no links of this type is a 207 NO_ASSOCIATIONS_FOUND entry
        return out


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (-1, value)


def _filter(name: str, operator: str, value: int) -> dict[str, str]:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _row(object_type: str, raw: Any) -> Row:
    props = dict(raw.properties or {})
    stamp = parse_datetime(props.get("hs_lastmodifieddate"))
    return epoch_ms(stamp) if stamp else 0, int(raw.id), object_type, props


def _next_after(obj: Any) -> str | None:
    paging = getattr(obj, "paging", None)
    nxt = getattr(paging, "next", None) if paging is not None else None
    after = getattr(nxt, "after", None) if nxt is not None else None
    return str(after) if after else None


def _activity(row: Row, links: dict[str, list[str]], key_property: str) -> Activity:
    stamp, obj_id, object_type, props = row
    kind = next(k for k, o in OBJECTS.items() if o == object_type)
    when = parse_datetime(props.get("hs_timestamp"))
    completed, completed_at, status = False, None, None
    if object_type == "tasks":
        status = props.get("hs_task_status") or None
        completed = status == "COMPLETED"
        completed_at = parse_datetime(props.get("hs_task_completion_date")) if completed \
            else None
    elif object_type == "meetings":
        when = parse_datetime(props.get("hs_meeting_start_time")) or when
    modified = EPOCH + timedelta(milliseconds=stamp)
    deals, companies = links.get("deals", []), links.get("companies", [])
    return Activity(
        id=str(obj_id), kind=kind,
        at=completed_at or when or parse_datetime(props.get("hs_createdate")) or modified,
        deal_id=min(deals, key=int) if deals else None,
        account_id=min(companies, key=int) if companies else None,
        contact_ids=tuple(sorted(links.get("contacts", []), key=int)),
        owner_id=props.get("hubspot_owner_id") or None,
        task_key=props.get(key_property) or None if object_type == "tasks" else None,
        status=status, completed=completed, completed_at=completed_at, modified_at=modified)
