"""Reading deals, their companies and contacts, pipelines and owners (reference §1, §2, §4).

`changed_deals` pages a search on `hs_lastmodifieddate` (ascending, 200 a page). Search can
reach only 10,000 results per query (§0), so before the offset would pass that the query is
restarted with the lower bound raised to the newest stamp seen; ids already handed out with
that stamp are skipped. Each page is re-read from a few rows back (`OVERLAP`): a deal modified
or deleted during the pull leaves the result set behind the cursor, which shifts every later
row one place left; the overlap keeps such a shift from skipping a row.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import structlog

from connectors.base import DealPage, HubSpotSettings
from connectors.hubspot.mapping import (
    CONTACT_PROPERTIES,
    DEAL_TO_COMPANY_PRIMARY,
    EPOCH,
    Stage,
    contact_from,
    deal_from,
    deal_properties,
    epoch_ms,
    is_record_id,
    owner_from,
    parse_datetime,
    stages_from,
)
from connectors.hubspot.transport import Transport
from connectors.models import Contact, Deal, Owner

log = structlog.get_logger("connectors.hubspot")

PAGE = 200  # search `limit` maximum
SEARCH_CAP = 10_000  # results one search query can reach
OVERLAP = 5
READ_BATCH = 100  # v3 batch read inputs
ASSOC_BATCH = 1_000  # v4 association batch read inputs (since 2025-02-10)
CACHE_TTL = 600.0  # pipelines and owners: read once per ~10 minutes
MISS_REFRESH = 60.0  # an unknown stage/owner re-reads a cache older than this
COMPANY_CACHE = 20_000
NO_ASSOCIATIONS = "NO_ASSOCIATIONS_FOUND"

Row = tuple[str, dict[str, Any], int]  # (deal id, properties, hs_lastmodifieddate in ms)


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


def _ids(values: Iterable[str]) -> list[str]:
    """Unique ids in order; anything that is not a HubSpot record id is an error."""
    wanted = list(dict.fromkeys(values))
    bad = [v for v in wanted if not is_record_id(v)]
    if bad:
        raise ValueError(f"not HubSpot record ids: {bad[:5]!r}")
    return wanted


class DealReader:
    search_cap = SEARCH_CAP

    def __init__(self, transport: Transport, settings: HubSpotSettings) -> None:
        self._t = transport
        self._fields = settings.fields
        self._properties = deal_properties(settings.fields)
        self._lock = threading.Lock()
        self._stages: dict[str, Stage] | None = None
        self._stages_at = 0.0
        self._owners: dict[str, Owner] | None = None
        self._owners_at = 0.0
        self._companies: OrderedDict[str, str | None] = OrderedDict()

    # -- pipelines and owners ---------------------------------------------------------------
    def stages(self, *, refresh: bool = False) -> dict[str, Stage]:
        with self._lock:
            fresh = self._stages is not None and time.monotonic() - self._stages_at < CACHE_TTL
            if fresh and not refresh and self._stages is not None:
                return self._stages
        api = self._t.api("crm.pipelines.pipelines_api")
        data = self._t.call("pipelines.list", api.get_all_with_http_info, object_type="deals")
        stages = stages_from(data.results)
        with self._lock:
            self._stages, self._stages_at = stages, time.monotonic()
        return stages

    def owners(self) -> list[Owner]:
        """Active owners, then archived (deactivated) ones: `archived=true` lists only those."""
        api = self._t.api("crm.owners.owners_api")
        found: dict[str, Owner] = {}
        # As text: given a bool, the SDK writes Python's `False` into the query string;
        # HubSpot's API reference writes `archived=false`: send exactly that.
        for archived in ("false", "true"):
            after: str | None = None
            while True:
                paging: dict[str, Any] = {"after": after} if after else {}
                data = self._t.call("owners.list", api.get_page_with_http_info, limit=100,
                                    archived=archived, **paging)
                for raw in data.results or []:
                    found.setdefault(str(raw.id), owner_from(raw))
                after = _next_after(data)
                if after is None:
                    break
        with self._lock:
            self._owners, self._owners_at = found, time.monotonic()
        return list(found.values())

    def snapshot(self) -> dict[str, Any] | None:
        """Pipelines' stages and owners as plain values (the setup cache), None if unread."""
        with self._lock:
            if self._stages is None or self._owners is None:
                return None
            return {"stages": [asdict(s) for s in self._stages.values()],
                    "owners": [o.model_dump(mode="json") for o in self._owners.values()]}

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take a snapshot back as if just read, except that a deal with an unknown stage or
        owner re-reads at once (a kept snapshot may be hours old)."""
        stages = {str(s["id"]): Stage(**s) for s in snapshot["stages"]}
        owners = {str(o["id"]): Owner.model_validate(o) for o in snapshot["owners"]}
        at = time.monotonic() - MISS_REFRESH - 1
        with self._lock:
            self._stages, self._stages_at = stages, at
            self._owners, self._owners_at = owners, at

    # -- deals ----------------------------------------------------------------------------------
    def changed(self, since: datetime) -> Iterator[DealPage]:
        if since.tzinfo is None:
            raise ValueError("since needs a time zone")
        bound, strict = epoch_ms(since), False
        recent: dict[str, int] = {}  # id -> stamp handed out (last page, and the newest stamp)
        buffered: list[Row] = []
        while True:
            after, top = 0, bound
            while True:
                page = self._search(bound, strict, after)
                rows = [_row(r) for r in page.results or []]
                buffered += [r for r in rows if recent.get(r[0]) != r[2]]
                if len(buffered) >= ASSOC_BATCH - PAGE:
                    yield self._page(buffered)
                    buffered = []
                top = max([top, *(r[2] for r in rows)])
                recent = {i: s for i, s in recent.items() if s == top}
                recent.update((r[0], r[2]) for r in rows)
                nxt = _next_after(page)
                if nxt is None:
                    if buffered:
                        yield self._page(buffered)
                    return
                after = max(int(nxt) - OVERLAP, after + 1)
                if after + PAGE > self.search_cap:
                    break
            if buffered:
                yield self._page(buffered)
                buffered = []
            if top > bound:
                bound, strict = top, False
            else:  # a whole 10,000-row window shares one stamp: walk it by id, then go past
                yield from self._same_stamp(bound, {i for i, s in recent.items() if s == bound})
                strict = True

    def _page(self, rows: list[Row]) -> DealPage:
        """Up to five search pages built at once: their companies and owners are read in full
        batches (1,000 association inputs, 100 companies) instead of one short batch a page."""
        return DealPage(self._build(rows), _moment(max(r[2] for r in rows)))

    def by_id(self, ids: Sequence[str]) -> list[Deal]:
        wanted = _ids(ids)
        rows: dict[str, Row] = {}
        api = self._t.api("crm.deals.batch_api")
        for chunk in chunks(wanted, READ_BATCH):
            data = self._t.call("deals.batch.read", api.read_with_http_info, items=len(chunk),
                                batch_read_input_simple_public_object_id={
                                    "inputs": [{"id": i} for i in chunk],
                                    "properties": self._properties, "propertiesWithHistory": []})
            for raw in data.results or []:
                row = _row(raw)
                rows[row[0]] = row
        built = {d.id: d for d in self._build(list(rows.values()))} if rows else {}
        # Ids HubSpot could not read come back as a 207 OBJECT_NOT_FOUND (archived or never
        # existed, reference §1.3): to the worker they are deleted.
        return [built.get(i) or Deal(id=i, deleted=True, is_closed=False) for i in wanted]

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        out: dict[str, list[Contact]] = {i: [] for i in deal_ids}
        wanted = [i for i in dict.fromkeys(deal_ids) if is_record_id(i)]
        links = self._associations("contacts", wanted)
        contact_ids = list(dict.fromkeys(c for items in links.values() for c, _ in items))
        props = self._read("contacts", contact_ids, list(CONTACT_PROPERTIES))
        for deal_id, items in links.items():
            out[deal_id] = [contact_from(c, props[c], _role(types)) for c, types in items
                            if c in props]
        return out

    # -- internals ----------------------------------------------------------------------------
    def _search(self, bound: int, strict: bool, after: int) -> Any:
        api = self._t.api("crm.deals.search_api")
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate",
                                           "operator": "GT" if strict else "GTE",
                                           "value": str(bound)}]}],
            # the SDK types `sorts` as list[str]; HubSpot wants objects (reference §1.3)
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
            "properties": self._properties, "limit": PAGE}
        if after:
            body["after"] = str(after)
        return self._t.call("deals.search", api.do_search_with_http_info, search=True,
                            public_object_search_request=body)

    def _same_stamp(self, stamp: int, seen: set[str]) -> Iterator[DealPage]:
        """Every deal modified at exactly `stamp`, keyset-paged by id (reference §1.3)."""
        api = self._t.api("crm.deals.search_api")
        last = "0"
        while True:
            body = {"filterGroups": [{"filters": [
                        {"propertyName": "hs_lastmodifieddate", "operator": "EQ",
                         "value": str(stamp)},
                        {"propertyName": "hs_object_id", "operator": "GT", "value": last}]}],
                    "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                    "properties": self._properties, "limit": PAGE}
            page = self._t.call("deals.search", api.do_search_with_http_info, search=True,
                                public_object_search_request=body)
            rows = [_row(r) for r in page.results or []]
            if not rows:
                return
            last = max((r[0] for r in rows), key=int)
            fresh = [r for r in rows if r[0] not in seen]
            if fresh:
                yield DealPage(self._build(fresh), _moment(stamp))
            if _next_after(page) is None:
                return

    def _build(self, rows: list[Row]) -> list[Deal]:
        stages = self._stage_map({str(p.get("dealstage") or "") for _, p, _ in rows})
        owners = self.owner_map({str(p["hubspot_owner_id"]) for _, p, _ in rows
                                  if p.get("hubspot_owner_id")})
        accounts = self._accounts([i for i, _, _ in rows])
        deals = []
        for deal_id, props, _ in rows:
            owner_id = props.get("hubspot_owner_id")
            owner = (owners.get(owner_id) or Owner(id=owner_id)) if owner_id else None
            deals.append(deal_from(deal_id, props, stages=stages, fields=self._fields,
                                   owner=owner, account=accounts.get(deal_id)))
        return deals

    def _stage_map(self, needed: set[str]) -> dict[str, Stage]:
        stages = self.stages()
        unknown = {s for s in needed if s and s not in stages}
        with self._lock:
            stale = time.monotonic() - self._stages_at > MISS_REFRESH
        return self.stages(refresh=True) if unknown and stale else stages

    def owner_map(self, needed: set[str]) -> dict[str, Owner]:
        """Owners by id from the cache (active and archived), re-read when stale or missing
        one of `needed`."""
        if not needed:
            return {}
        with self._lock:
            owners, age = self._owners, time.monotonic() - self._owners_at
        if owners is None or age > CACHE_TTL or (needed - owners.keys() and age > MISS_REFRESH):
            self.owners()
            with self._lock:
                owners = self._owners
        return owners or {}

    def _accounts(self, deal_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """deal id -> (company id, name): the primary company, else the lowest id."""
        chosen: dict[str, str] = {}
        for deal_id, items in self._associations("companies", deal_ids).items():
            primary = [c for c, types in items
                       if any(t.type_id == DEAL_TO_COMPANY_PRIMARY for t in types)]
            chosen[deal_id] = primary[0] if primary else min((c for c, _ in items), key=int)
        with self._lock:
            missing = [c for c in dict.fromkeys(chosen.values()) if c not in self._companies]
        names = {c: p.get("name") for c, p in self._read("companies", missing, ["name"]).items()}
        with self._lock:
            for company_id in missing:
                self._companies[company_id] = names.get(company_id)
            while len(self._companies) > COMPANY_CACHE:
                self._companies.popitem(last=False)
            return {d: (c, self._companies.get(c)) for d, c in chosen.items()}

    def _associations(self, to_type: str, ids: list[str]) -> dict[str, list[tuple[str, Any]]]:
        """v4 batch read: {from id: [(to id, associationTypes)]}, ids deduplicated."""
        api = self._t.api("crm.associations.v4.batch_api")
        out: dict[str, dict[str, Any]] = {}
        pending: list[dict[str, str]] = [{"id": i} for i in ids]
        while pending:
            batch, pending = pending[:ASSOC_BATCH], pending[ASSOC_BATCH:]
            data = self._t.call(
                "associations.v4.batch.read", api.get_page_with_http_info, items=len(batch),
                from_object_type="deals", to_object_type=to_type,
                batch_input_public_fetch_associations_batch_request={"inputs": batch})
            for result in data.results or []:
                from_id = str(result._from.id)
                targets = out.setdefault(from_id, {})
                for item in result.to or []:
                    targets.setdefault(str(item.to_object_id), item.association_types or [])
                cursor = _next_after(result)
                if cursor:
                    pending.append({"id": from_id, "after": cursor})
            for error in getattr(data, "errors", None) or []:
                # A deal with no links is a 207 error entry, not an empty list (reference §2).
                if NO_ASSOCIATIONS not in str(error.sub_category or ""):
                    log.warning("crm.association_error", connection=self._t.name,
                                to=to_type, code=error.sub_category or error.category,
                                ids=(error.context or {}).get("fromObjectId"))
        return {d: list(targets.items()) for d, targets in out.items()}

    def _read(self, object_type: str, ids: list[str], properties: list[str]
              ) -> dict[str, dict[str, Any]]:
        api = self._t.api(f"crm.{object_type}.batch_api")
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(ids, READ_BATCH):
            data = self._t.call(f"{object_type}.batch.read", api.read_with_http_info,
                                items=len(chunk), batch_read_input_simple_public_object_id={
                                    "inputs": [{"id": i} for i in chunk],
                                    "properties": properties, "propertiesWithHistory": []})
            for raw in data.results or []:
                found[str(raw.id)] = dict(raw.properties or {})
        return found


def _row(raw: Any) -> Row:
    props = dict(raw.properties or {})
    stamp = parse_datetime(props.get("hs_lastmodifieddate"))
    return str(raw.id), props, epoch_ms(stamp) if stamp else 0


def _moment(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _next_after(obj: Any) -> str | None:
    paging = getattr(obj, "paging", None)
    nxt = getattr(paging, "next", None) if paging is not None else None
    after = getattr(nxt, "after", None) if nxt is not None else None
    return str(after) if after else None


def _role(types: Any) -> str | None:
    """A user-defined deal->contact association label (e.g. "Decision Maker") as the role."""
    for item in types or []:
        if getattr(item, "category", None) == "USER_DEFINED" and getattr(item, "label", None):
            return str(item.label)
    return None
