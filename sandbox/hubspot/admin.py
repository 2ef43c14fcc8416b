"""HubSpot's admin routes under /__sandbox/ (never counted, never rate limited, no auth):
seed data, read every task, change objects and owners as an admin, set limits, expire
tokens, set the search lag, pre-create properties. The core adds calls, faults, latency,
clock, violations, writes (the write log per task key) and reset.

Activities, as a rep would log them (issue 13):

    POST activities           {"kind": call|email|meeting|note|task, "at"?: ISO (default: the
                              emulator clock), "deal"?, "company"?, "contact"?, "owner"?,
                              "subject"?} -> the engagement, linked with HubSpot's
                              association types (call->deal 206, ->company 182, ->contact 194,
                              email 210/186/198, meeting 212/188/200, note 214/190/202,
                              task 216/192/204)
    POST activities/complete  {"id": task id, "at"?}: hs_task_status COMPLETED and
                              hs_task_completion_date at `at` (default: the emulator clock)
    (delete an engagement: DELETE objects/<type>/<id>, which archives it; set deal fields,
    e.g. winback_opt_out / winback_pause_until: PATCH objects/deals/<id>)

The prospect simulator (sandbox/prospects.py, sandbox/hubspot/prospects.py):

    POST prospects            {"seed": 0, "base": 0.1, "completed": {"post-mortem": 0.2},
                              "days": [30, 80], "new_deal_share": 0.0, "reps": {"complete":
                              1.0, "after_days": 1}} (all optional; these are the defaults)
                              -> the config, replacing the last; 400 {"message", "field"}
    GET prospects             {"config"|null, "decided": [{"deal", "lost_on", "decided_on",
                              "probability", "completed", "reborn", "how", "new_deal"}],
                              "reborn": n, "completed_tasks": n}
    POST prospects/run        simulate up to the clock (also done after each POST clock):
                              reps complete winback_key tasks (as activities/complete)
                              hs_timestamp's day + after_days; lost deals reopen (PATCH: the
                              pipeline's first open stage) or get a new deal on their company
    DELETE prospects          off (config null, the log kept until reset)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.hubspot.errors import PropertyProblems, invalid, json_object, not_found
from sandbox.hubspot.ops import create_object, update_object
from sandbox.hubspot.prospects import register as register_prospects
from sandbox.hubspot.routes_crm import create_property
from sandbox.hubspot.schema import OBJECT_TYPES, object_type
from sandbox.hubspot.search import SearchEngine
from sandbox.hubspot.seeding import (
    ENGAGEMENT_KINDS,
    parse_link_map,
    seed_fixtures,
    seed_generated,
)
from sandbox.hubspot.store import Owner, Record, Store
from sandbox.hubspot.values import iso_ms, parse_time
from sandbox.messages import HttpError, Request, Response

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator


def register(emu: HubSpotEmulator) -> None:
    def add(method: str, path: str, fn: Any) -> None:
        emu.add_admin_route(method, path, _guard(lambda r: fn(emu, r)))

    add("POST", "seed", seed)
    add("GET", "tasks", tasks)
    add("GET", "limits", limits_get)
    add("POST", "limits", limits_set)
    add("GET", "tokens", tokens_get)
    add("POST", "tokens/expire", tokens_expire)
    add("POST", "tokens/ttl", tokens_ttl)
    add("POST", "search-lag", search_lag)
    add("POST", "settings", settings)
    add("POST", "properties", properties)
    add("GET", "stats", stats)
    add("GET", "queries", queries)
    add("POST", "activities", log_activity)
    add("POST", "activities/complete", complete_task)
    for type_ in ("owners", *OBJECT_TYPES):
        add("GET", f"objects/{type_}", lambda e, r, t=type_: objects_list(e, t, r))
        add("POST", f"objects/{type_}", lambda e, r, t=type_: object_create(e, t, r))
    for method, fn in (("GET", object_get), ("PATCH", object_patch), ("DELETE", object_delete)):
        emu.add_admin_pattern(method, r"objects/(?P<type>[\w-]+)/(?P<id>[^/]+)",
                              _guard(lambda r, f=fn: f(emu, r)))
    register_prospects(emu, _guard)


def _guard(handler: Any) -> Any:
    def run(request: Request) -> Response:
        try:
            result: Response = handler(request)
        except PropertyProblems as exc:
            return exc.response()
        return result

    return run


def _type_name(name: str) -> str:
    if name == "owners":
        return name
    found = object_type(name)
    if found is None:
        invalid(f"unknown object type {name!r}")
    return found.name


def admin_json(emu: HubSpotEmulator, rec: Record) -> dict[str, Any]:
    """Every stored property plus {type: [ids]} associations (archived targets included)."""
    links = {}
    for (src, dst), table in emu.store.links.items():
        if src == rec.type and rec.id in table:
            links[dst] = [str(i) for i in sorted(table[rec.id])]
    out: dict[str, Any] = {"id": str(rec.id), "properties": dict(rec.props),
                           "createdAt": rec.created, "updatedAt": rec.updated,
                           "archived": rec.archived, "archivedAt": rec.archived_at,
                           "associations": links}
    owner = emu.store.owners.get(int(rec.props.get("hubspot_owner_id") or 0))
    if owner is not None:
        out["ownerArchived"] = owner.archived
    return out


# -- seeding and reading -----------------------------------------------------------------
def seed(emu: HubSpotEmulator, request: Request) -> Response:
    """{"generate": {"deals": N, "seed": S, ...generate() kwargs}} or {"objects": {...}};
    `"activities": A` in generate also logs A engagements (calls, emails, meetings, notes,
    tasks in turn) linked to the deals, their companies and contacts;
    replaces all CRM data unless "append": true (custom properties are kept; a failed
    replace leaves the old data in place)."""
    body = json_object(request)
    if not ("generate" in body or "objects" in body):
        invalid("seed needs 'generate' or 'objects'")
    with emu.lock:
        old_store, old_engine = emu.store, emu.engine
        if not body.get("append"):
            emu.store = Store(lag_seconds=old_store.lag)
            for type_, props in old_store.props.items():
                for prop in props.values():
                    if not prop.hubspot_defined and prop.name not in emu.store.props[type_]:
                        emu.store.add_property(type_, prop)
            emu.engine = SearchEngine()
        try:
            if "generate" in body:
                spec = body["generate"]
                if not isinstance(spec, dict):
                    invalid("generate must be an object")
                return Response.json(200, seed_generated(emu, {"seed": emu.seed, **spec}))
            return Response.json(200, seed_fixtures(emu, body["objects"] or {}))
        except BaseException:
            if not body.get("append"):  # a failed replace leaves the old data in place
                emu.store, emu.engine = old_store, old_engine
            raise


def tasks(emu: HubSpotEmulator, request: Request) -> Response:
    """Every task ever written, archived ones included."""
    with emu.lock:
        results = [admin_json(emu, r) for _, r in sorted(emu.store.objects["tasks"].items())]
    return Response.json(200, {"total": len(results), "results": results})


def stats(emu: HubSpotEmulator, request: Request) -> Response:
    with emu.lock:
        counts = {t: {"live": sum(not r.archived for r in objs.values()),
                      "archived": sum(r.archived for r in objs.values())}
                  for t, objs in emu.store.objects.items()}
        counts["owners"] = {"live": sum(not o.archived for o in emu.store.owners.values()),
                            "archived": sum(o.archived for o in emu.store.owners.values())}
    return Response.json(200, {"objects": counts, "usage": emu.limiter.usage()})


# -- objects and owners ------------------------------------------------------------------
def objects_list(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    with emu.lock:
        if type_ == "owners":
            results = [o.to_json() for _, o in sorted(emu.store.owners.items())]
        else:
            results = [admin_json(emu, r) for _, r in sorted(emu.store.objects[type_].items())]
    return Response.json(200, {"total": len(results), "results": results})


def _props(body: dict[str, Any]) -> dict[str, Any]:
    raw = body.get("properties")
    if raw is None:
        raw = {k: v for k, v in body.items() if k not in ("id", "associations", "archived")}
    return dict(raw)


def object_create(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    body = json_object(request)
    with emu.lock:
        if type_ == "owners":
            owner = emu.store.add_owner(
                email=str(body.get("email") or f"owner{len(emu.store.owners)}@seller.example"),
                first_name=str(body.get("firstName", "")), last_name=str(body.get("lastName", "")),
                archived=bool(body.get("archived", False)), now=emu.now(),
                owner_id=int(body["id"]) if body.get("id") else None,
                teams=body.get("teams") or [])
            return Response.json(201, owner.to_json())
        rec = create_object(emu, type_, _props(body), None, admin=True,
                            obj_id=int(body["id"]) if body.get("id") else None)
        links = parse_link_map(emu, type_, body.get("associations"), {})
        for to_type, to_id, type_id in links:
            emu.store.link(type_, rec.id, to_type, to_id, type_id)
        if body.get("archived"):
            rec = emu.store.archive(rec, emu.now())
        return Response.json(201, admin_json(emu, rec))


def _item(emu: HubSpotEmulator, request: Request) -> tuple[str, Record | Owner]:
    type_ = _type_name(request.path_params["type"])
    key = request.path_params["id"]
    found: Record | Owner | None
    if type_ == "owners":
        found = emu.store.owners.get(int(key)) if key.isdigit() else None
    else:
        found = emu.store.objects[type_].get(int(key)) if key.isdigit() else None
    if found is None:
        not_found(f"{type_} {key} does not exist")
    return type_, found


def object_get(emu: HubSpotEmulator, request: Request) -> Response:
    with emu.lock:
        _, found = _item(emu, request)
        if isinstance(found, Owner):
            return Response.json(200, found.to_json())
        return Response.json(200, admin_json(emu, found))


def object_patch(emu: HubSpotEmulator, request: Request) -> Response:
    """Change properties (hs_lastmodifieddate moves unless given), add associations,
    archive/restore ({"archived": bool}); owners: email, firstName, lastName, archived."""
    body = json_object(request)
    with emu.lock:
        type_, found = _item(emu, request)
        if isinstance(found, Owner):
            found.email = str(body.get("email", found.email))
            found.first_name = str(body.get("firstName", found.first_name))
            found.last_name = str(body.get("lastName", found.last_name))
            found.archived = bool(body.get("archived", found.archived))
            found.updated = iso_ms(emu.now())
            return Response.json(200, found.to_json())
        rec = found
        if body.get("archived") is False and rec.archived:
            rec = emu.store.restore(rec, emu.now())
        props = _props({k: v for k, v in body.items() if k != "archived"})
        if props or "properties" in body:
            rec = update_object(emu, rec, props, admin=True)
        for to_type, to_id, type_id in parse_link_map(emu, type_, body.get("associations"), {}):
            emu.store.link(type_, rec.id, to_type, to_id, type_id)
        if body.get("archived") and not rec.archived:
            rec = emu.store.archive(rec, emu.now())
        return Response.json(200, admin_json(emu, rec))


def object_delete(emu: HubSpotEmulator, request: Request) -> Response:
    """Archive an object, or deactivate an owner (archived, userId null)."""
    with emu.lock:
        _, found = _item(emu, request)
        if isinstance(found, Owner):
            found.archived = True
            return Response.json(200, found.to_json())
        if not found.archived:
            found = emu.store.archive(found, emu.now())
        return Response.json(200, admin_json(emu, found))


# -- knobs -------------------------------------------------------------------------------
def limits_get(emu: HubSpotEmulator, request: Request) -> Response:
    return Response.json(200, dict(emu.limits.__dict__))


def limits_set(emu: HubSpotEmulator, request: Request) -> Response:
    """{"burst": N, "search_per_second": N, "daily": N, "retry_after": s|null,
    "burst_window_seconds": s, "reset_counters": bool}."""
    body = json_object(request)
    reset = bool(body.pop("reset_counters", False))
    try:
        emu.limits.update(body)
    except (TypeError, ValueError) as exc:
        invalid(str(exc))
    if reset:
        emu.limiter.reset()
    return limits_get(emu, request)


def tokens_get(emu: HubSpotEmulator, request: Request) -> Response:
    return Response.json(200, emu.auth.snapshot(emu.now()))


def tokens_expire(emu: HubSpotEmulator, request: Request) -> Response:
    """{} expires every access token; {"and_next": n} also the next n as soon as issued."""
    and_next = int(json_object(request).get("and_next", 0))
    return Response.json(200, {"expired": emu.auth.expire_all(emu.now(), and_next)})


def tokens_ttl(emu: HubSpotEmulator, request: Request) -> Response:
    """{"seconds": N}: the life of access tokens issued from now on."""
    emu.auth.ttl_seconds = float(json_object(request).get("seconds", 1800))
    return tokens_get(emu, request)


def search_lag(emu: HubSpotEmulator, request: Request) -> Response:
    """{"seconds": x}: writes reach search x seconds later (0: at once, pending ones too)."""
    seconds = float(json_object(request).get("seconds", 0))
    with emu.lock:
        emu.store.set_lag(seconds)
    return Response.json(200, {"seconds": seconds})


def settings(emu: HubSpotEmulator, request: Request) -> Response:
    """{"batch_conflicts": "partial"|"whole"}."""
    body = json_object(request)
    mode = body.get("batch_conflicts", emu.batch_conflicts)
    if mode not in ("partial", "whole"):
        invalid("batch_conflicts must be 'partial' or 'whole'")
    emu.batch_conflicts = mode
    return Response.json(200, {"batch_conflicts": mode})


def properties(emu: HubSpotEmulator, request: Request) -> Response:
    """{"objectType": "tasks", "name": …, "hasUniqueValue": true, label/type/fieldType/
    groupName optional (default: name, string, text, the type's first group)}."""
    body = json_object(request)
    type_ = _type_name(str(body.pop("objectType", "tasks")))
    if type_ == "owners":
        invalid("owners have no properties")
    with emu.lock:
        body.setdefault("label", body.get("name"))
        body.setdefault("type", "string")
        body.setdefault("fieldType", "text")
        body.setdefault("groupName", emu.store.groups[type_][0][0])
        try:
            prop = create_property(emu, type_, body)
        except HttpError as exc:
            return exc.response
        return Response.json(201, prop.to_json())


def queries(emu: HubSpotEmulator, request: Request) -> Response:
    """`GET queries?endpoint=owners.list`: the query parameters of the last calls there."""
    endpoint = request.param("endpoint") or ""
    with emu.lock:
        seen = [dict(q) for q in emu.queries.get(endpoint, ())]
    return Response.json(200, {"endpoint": endpoint, "queries": seen})


def _moment(emu: HubSpotEmulator, body: dict[str, Any]) -> str:
    if not body.get("at"):
        return iso_ms(emu.now())
    moment = parse_time(str(body["at"]))
    if moment is None:
        invalid(f'"at" is not an ISO 8601 date-time: {body["at"]!r}')
    return iso_ms(moment)


def log_activity(emu: HubSpotEmulator, request: Request) -> Response:
    body = json_object(request)
    kind = body.get("kind")
    if kind not in ENGAGEMENT_KINDS:
        invalid(f"kind must be one of {sorted(ENGAGEMENT_KINDS)}, got {kind!r}")
    type_, defaults, type_ids = ENGAGEMENT_KINDS[str(kind)]
    at = _moment(emu, body)
    props: dict[str, Any] = {"hs_timestamp": at, **defaults}
    if type_ == "meetings":
        props["hs_meeting_start_time"] = at
    if body.get("owner"):
        props["hubspot_owner_id"] = str(body["owner"])
    if body.get("subject"):
        title = {"calls": "hs_call_title", "emails": "hs_email_subject",
                 "meetings": "hs_meeting_title", "notes": "hs_note_body",
                 "tasks": "hs_task_subject"}[type_]
        props[title] = str(body["subject"])
    links = {name: [{"id": str(body[key]), "typeId": type_id}]
             for key, name, type_id in zip(("deal", "company", "contact"),
                                           ("deals", "companies", "contacts"), type_ids,
                                           strict=True) if body.get(key)}
    with emu.lock:
        rec = create_object(emu, type_, props, None, admin=True)
        for to_type, to_id, type_id in parse_link_map(emu, type_, links, {}):
            emu.store.link(type_, rec.id, to_type, to_id, type_id)
        return Response.json(201, admin_json(emu, rec))


def complete_task(emu: HubSpotEmulator, request: Request) -> Response:
    body = json_object(request)
    at = _moment(emu, body)
    with emu.lock:
        rec = emu.store.get("tasks", str(body.get("id", "")))
        if rec is None:
            not_found(f"task {body.get('id')!r} does not exist")
        rec = update_object(emu, rec, {"hs_task_status": "COMPLETED",
                                       "hs_task_completion_date": at}, admin=True)
        return Response.json(200, admin_json(emu, rec))
