"""Turn seed data into portal data: `sandbox.seed.generate()` output (owners, companies,
contacts, deals with associations) or JSON fixtures with client-side refs. Callers hold the
lock. Seeded objects are searchable at once, whatever the search lag."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.hubspot.errors import invalid
from sandbox.hubspot.ops import check_props
from sandbox.hubspot.schema import PAIR_TYPES, PIPELINES, object_type
from sandbox.hubspot.store import Conflict, Store
from sandbox.hubspot.values import iso_ms, parse_time
from sandbox.seed import SeedData, SeedDeal, generate

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator

TEAMS = {"US": ("178588", "North America"), "GB": ("178590", "EMEA"),
         "DE": ("178590", "EMEA"), "AU": ("178592", "APAC")}
CUSTOM_EVERY = 8  # every 8th deal (index % 8 == 5) lives in the custom "Renewals" pipeline
OBJECT_ORDER = ("companies", "contacts", "deals", "tasks", "calls", "meetings", "emails", "notes")


def _stage(deal: SeedDeal) -> tuple[str, str]:
    pipeline = PIPELINES[1] if deal.index % CUSTOM_EVERY == 5 else PIPELINES[0]
    closed = {"won": "1.0", "lost": "0.0"}.get(deal.state)
    if closed is not None:
        stage = next(s for s in pipeline.stages if s.closed and s.probability == closed)
    else:
        open_stages = [s for s in pipeline.stages if not s.closed]
        stage = open_stages[deal.index % len(open_stages)]
    return pipeline.id, stage.id


def seed_generated(emu: HubSpotEmulator, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec`: generate() keyword arguments (`deals` required; `now` may be ISO 8601)."""
    kwargs = dict(spec)
    if "deals" not in kwargs:
        invalid("generate needs 'deals'")
    now_raw = kwargs.pop("now", None)
    activities = int(kwargs.pop("activities", 0))
    now = (parse_time(str(now_raw)) if now_raw else None) or emu.now()
    collecting = gc.isenabled()
    gc.disable()  # ~10^5 long-lived objects: generational GC passes only cost time here
    try:
        try:
            data = generate(now=now, **kwargs)
        except TypeError as exc:
            invalid(f"bad generate arguments: {exc}")
        return _load(emu, data, now, activities)
    finally:
        if collecting:
            gc.enable()


def _load(emu: HubSpotEmulator, data: SeedData, now: datetime, activities: int = 0
          ) -> dict[str, Any]:
    store = emu.store
    lag, store.lag = store.lag, 0.0
    try:
        owner_ids = []
        for o in data.owners:
            team_id, team = TEAMS.get(o.country, ("178594", "Other"))
            owner = store.add_owner(email=o.email, first_name=o.first_name, last_name=o.last_name,
                                    archived=not o.active, now=now - timedelta(days=900 - o.index),
                                    teams=[{"id": team_id, "name": team, "primary": True}])
            owner_ids.append(owner.id)
        born = now - timedelta(days=800)
        company_ids = [store.create("companies", {"name": a.name, "domain": a.domain}, born).id
                       for a in data.accounts]
        contact_ids = []
        for c in data.contacts:
            rec = store.create("contacts", {
                "firstname": c.first_name, "lastname": c.last_name, "email": c.email,
                "hs_email_optout": "true" if c.opted_out else "false"}, born,
                links=[("companies", company_ids[c.account], 1)])
            contact_ids.append(rec.id)
        lost = 0
        deal_ids: list[tuple[int, int, int | None, int, datetime]] = []
        for d in data.deals:
            pipeline, stage = _stage(d)
            lost += d.state == "lost"
            entered = d.modified_at if d.state != "open" else d.created_at
            props: dict[str, str | None] = {
                "dealname": d.name, "pipeline": pipeline, "dealstage": stage,
                "closedate": iso_ms(datetime.combine(d.close_date, time(), tzinfo=UTC)),
                "amount": None if d.amount is None else _number(d.amount),
                "hubspot_owner_id": str(owner_ids[d.owner]),
                "closed_lost_reason": d.loss_reason, "competitor": d.competitor,
                "contract_end_date": d.contract_end.isoformat() if d.contract_end else None,
                "createdate": iso_ms(d.created_at), "hs_lastmodifieddate": iso_ms(d.modified_at),
                f"hs_v2_date_entered_{stage}": iso_ms(entered),
            }
            links = [("contacts", contact_ids[c], 3) for c, _ in d.contacts]
            links.append(("companies", company_ids[d.account], 5))
            rec = store.create("deals", {k: v for k, v in props.items() if v is not None},
                               d.modified_at, links=links)
            deal_ids.append((rec.id, company_ids[d.account],
                             contact_ids[d.contacts[0][0]] if d.contacts else None,
                             owner_ids[d.owner], d.modified_at))
        _activities(store, activities, deal_ids)
    finally:
        store.lag = lag
    return {"owners": len(data.owners), "companies": len(data.accounts),
            "contacts": len(data.contacts), "deals": len(data.deals), "closed_lost": lost,
            "activities": activities if deal_ids else 0}


# One kind of engagement per activity in turn, with its association type ids to the deal,
# the company and the contact (schema._ASSOC_ROWS).
ENGAGEMENT_KINDS: dict[str, tuple[str, dict[str, str], tuple[int, int, int]]] = {
    "call": ("calls", {"hs_call_title": "Call", "hs_call_direction": "OUTBOUND"},
             (206, 182, 194)),
    "email": ("emails", {"hs_email_subject": "Email", "hs_email_direction": "EMAIL"},
              (210, 186, 198)),
    "meeting": ("meetings", {"hs_meeting_title": "Meeting", "hs_meeting_outcome": "COMPLETED"},
                (212, 188, 200)),
    "note": ("notes", {"hs_note_body": "Note"}, (214, 190, 202)),
    "task": ("tasks", {"hs_task_subject": "Task", "hs_task_status": "NOT_STARTED"},
             (216, 192, 204))}
ACTIVITY_CYCLE = tuple(ENGAGEMENT_KINDS.values())


def _activities(store: Any, count: int,
                deals: list[tuple[int, int, int | None, int, datetime]]) -> None:
    """`count` engagements spread over the deals in turn, each linked to the deal, its company
    and first contact, dated (and last modified) up to a month after the deal's last change."""
    for i in range(count if deals else 0):
        deal, company, contact, owner, changed = deals[i % len(deals)]
        object_type, props, types = ACTIVITY_CYCLE[i % len(ACTIVITY_CYCLE)]
        at = iso_ms(changed + timedelta(hours=i % 720))
        extra = {"hs_meeting_start_time": at} if object_type == "meetings" else {}
        links = [("deals", deal, types[0]), ("companies", company, types[1])]
        if contact is not None:
            links.append(("contacts", contact, types[2]))
        store.create(object_type, {"hs_timestamp": at, "hubspot_owner_id": str(owner),
                                   "hs_createdate": at, "hs_lastmodifieddate": at,
                                   **props, **extra},
                     changed + timedelta(hours=i % 720), links=links)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _resolve(value: Any, refs: dict[str, str], *, strict: bool) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] in refs:
            return refs[value[1:]]
        if strict:
            invalid(f"unknown ref {value!r}")
    return value


def seed_fixtures(emu: HubSpotEmulator, objects: dict[str, Any]) -> dict[str, Any]:
    """`{"owners": [...], "companies": [...], "contacts": [...], "deals": [...], "tasks": [...]}`.

    An owner: {ref?, id?, email, firstName, lastName, archived?}. An object: {ref?, id?,
    properties: {...} (or the properties inline), associations?: {"contacts": ["@ref", "123"]},
    archived?}. Property values "@ref" become that object's id. Returns {"ids": {ref: id}}.
    """
    unknown = set(objects) - {"owners", *OBJECT_ORDER}
    if unknown:
        invalid(f"unknown fixture sections: {sorted(unknown)}")
    store: Store = emu.store
    refs: dict[str, str] = {}
    lag, store.lag = store.lag, 0.0
    try:
        for i, item in enumerate(objects.get("owners") or []):
            owner = store.add_owner(
                email=str(item.get("email") or f"owner{i}@seller.example"),
                first_name=str(item.get("firstName", "")), last_name=str(item.get("lastName", "")),
                archived=bool(item.get("archived", False)), now=emu.now(),
                owner_id=int(item["id"]) if item.get("id") else None,
                teams=item.get("teams") or [])
            if item.get("ref"):
                refs[str(item["ref"])] = str(owner.id)
        for type_ in OBJECT_ORDER:
            for item in objects.get(type_) or []:
                rec_id = _fixture_object(emu, type_, item, refs)
                if item.get("ref"):
                    refs[str(item["ref"])] = rec_id
    finally:
        store.lag = lag
    return {"ids": refs}


def _fixture_object(emu: HubSpotEmulator, type_: str, item: dict[str, Any],
                    refs: dict[str, str]) -> str:
    store = emu.store
    meta_keys = {"ref", "id", "properties", "associations", "archived"}
    raw = item.get("properties")
    if raw is None:
        raw = {k: v for k, v in item.items() if k not in meta_keys}
    raw = {k: _resolve(v, refs, strict=False) for k, v in raw.items()}
    changes = check_props(emu, type_, raw, creating=True, admin=True)
    links = parse_link_map(emu, type_, item.get("associations"), refs)
    try:
        rec = store.create(type_, changes, emu.now(),
                           obj_id=int(item["id"]) if item.get("id") else None, links=links)
    except Conflict as exc:
        invalid(f"fixture conflict: {exc}")
    if item.get("archived"):
        store.archive(rec, emu.now())
    return str(rec.id)


def parse_link_map(emu: HubSpotEmulator, type_: str, raw: Any,
                   refs: dict[str, str]) -> list[tuple[str, int, int]]:
    """{"contacts": ["@ref", "123", {"id": "@ref", "typeId": 3}], ...} -> links."""
    if not raw:
        return []
    if not isinstance(raw, dict):
        invalid("fixture associations must be an object {type: [ids]}")
    links = []
    for name, targets in raw.items():
        target = object_type(name)
        if target is None or (type_, target.name) not in PAIR_TYPES:
            invalid(f"no association from {type_} to {name}")
        for entry in targets:
            key, type_id = (entry.get("id"), entry.get("typeId")) if isinstance(entry, dict) \
                else (entry, None)
            key = _resolve(str(key), refs, strict=True)
            if emu.store.get(target.name, key) is None:
                invalid(f"{target.singular} {key} does not exist")
            links.append((target.name, int(key),
                          int(type_id) if type_id else PAIR_TYPES[(type_, target.name)][0]))
    return links
