"""`/crm/v3/objects/{type}`: get, list, create, update, archive, search and the batch calls
(read, create, update, archive, upsert) for deals, contacts, companies and tasks.

Batch rules (reference §3): at most 100 inputs (50 with propertiesWithHistory); results
come back in an order unrelated to the inputs; `objectWriteTraceId` is echoed. A property
problem in any input fails the whole batch with one 400 naming it; missing ids and
unique-value conflicts are per-input errors in a 207 (or, with batch_conflicts="whole",
a conflict fails the whole batch with 409).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from sandbox.hubspot import writelog
from sandbox.hubspot.errors import PropertyProblems, inputs_of, invalid, json_object
from sandbox.hubspot.ops import (
    assoc_json,
    batch_answer,
    bool_param,
    check_props,
    conflict_error,
    create_object,
    history_json,
    int_param,
    lookup,
    missing_object,
    names_param,
    not_found_error,
    parse_links,
    raise_conflict,
    update_object,
)
from sandbox.hubspot.schema import OBJECT_TYPES, type_regex
from sandbox.hubspot.search import parse_request
from sandbox.hubspot.store import Conflict, Props, Record, record_json
from sandbox.messages import HttpError, Request, Response

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator

Op = Callable[["HubSpotEmulator", str, Request], Response]


def register(emu: HubSpotEmulator) -> None:
    for meta in OBJECT_TYPES.values():
        base = f"/crm/v3/objects/{type_regex(meta)}"
        routes: list[tuple[str, str, str, Op]] = [
            ("POST", "/search", "search", search),
            ("POST", "/batch/read", "batch.read", batch_read),
            ("POST", "/batch/create", "batch.create", batch_create),
            ("POST", "/batch/update", "batch.update", batch_update),
            ("POST", "/batch/archive", "batch.archive", batch_archive),
            ("POST", "/batch/upsert", "batch.upsert", batch_upsert),
            ("GET", "/?", "list", list_objects),
            ("POST", "/?", "create", create),
            ("GET", "/(?P<id>[^/]+)", "get", get),
            ("PATCH", "/(?P<id>[^/]+)", "update", update),
            ("DELETE", "/(?P<id>[^/]+)", "archive", archive),
        ]
        for method, suffix, name, op in routes:
            handler = emu.api(partial(op, emu, meta.name), search=name == "search")
            emu.add_route(method, base + suffix, f"{meta.name}.{name}", handler)


# -- single objects --------------------------------------------------------------------------
def get(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    key = request.path_params["id"]
    with emu.lock:
        rec = lookup(emu, type_, key, request.param("idProperty"), bool_param(request, "archived"))
        if rec is None:
            missing_object(type_, key)
        return Response.json(200, _read_json(emu, rec, request))


def _read_json(emu: HubSpotEmulator, rec: Record, request: Request) -> dict[str, Any]:
    out = record_json(rec, names_param(request, "properties"), emu.store.props[rec.type])
    history = names_param(request, "propertiesWithHistory")
    if history:
        out["propertiesWithHistory"] = history_json(rec, history)
    associations = assoc_json(emu, rec, names_param(request, "associations"))
    if associations:
        out["associations"] = associations
    return out


def list_objects(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    limit = int_param(request, "limit", 10, 100)
    after = request.param("after")
    archived = bool_param(request, "archived")
    try:
        start = int(after) if after else 0
    except ValueError:
        invalid(f"after must be a cursor returned by a previous page, got {after!r}")
    with emu.lock:
        ids = sorted(i for i, r in emu.store.objects[type_].items()
                     if i >= start and r.archived == archived)
        page = ids[:limit]
        results = [_read_json(emu, emu.store.objects[type_][i], request) for i in page]
    body: dict[str, Any] = {"results": results}
    if len(ids) > limit:
        nxt = str(ids[limit])
        body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return Response.json(200, body)


def create(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    body = json_object(request)
    with emu.lock:
        try:
            rec = create_object(emu, type_, body.get("properties"), body.get("associations"))
        except HttpError:
            writelog.refused(emu, type_, body.get("properties"))
            raise
        writelog.logged(emu, type_, rec.props, "created")
        return Response.json(201, record_json(rec, None, emu.store.props[type_], everything=True))


def update(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    key = request.path_params["id"]
    body = json_object(request)
    with emu.lock:
        rec = lookup(emu, type_, key, request.param("idProperty"))
        if rec is None:
            missing_object(type_, key)
        rec = update_object(emu, rec, body.get("properties"))
        writelog.logged(emu, type_, rec.props, "updated")
        return Response.json(200, record_json(rec, None, emu.store.props[type_], everything=True))


def archive(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    with emu.lock:
        rec = emu.store.get(type_, request.path_params["id"])
        if rec is not None:
            emu.store.archive(rec, emu.now())
    return Response.empty(204)


# -- search ----------------------------------------------------------------------------------
def search(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    body = json_object(request)
    with emu.lock:
        props_def = emu.store.props[type_]
        req = parse_request(type_, body, props_def)
        view, generation = emu.store.view(type_, emu.now())
        matches = emu.engine.matches(req.query, view, generation, props_def)
        page = matches[req.offset:req.offset + req.limit]
        results = [record_json(r, req.properties, props_def) for r in page]
    out: dict[str, Any] = {"total": len(matches), "results": results}
    nxt = req.offset + len(page)
    if page and nxt < len(matches):
        out["paging"] = {"next": {"after": str(nxt), "link": f"?after={nxt}"}}
    return Response.json(200, out)


# -- batches ---------------------------------------------------------------------------------
def _ids(inputs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for item in inputs:
        value = item.get("id")
        if value is None or isinstance(value, dict | list):
            invalid("every input needs an 'id'")
        ids.append(str(value))
    return ids


def _no_duplicates(ids: list[str]) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            invalid(f"Duplicate IDs found in batch input: [{value}]. IDs must be unique",
                    context={"ids": [value]})
        seen.add(value)


def _indexed(index: int, exc: PropertyProblems) -> PropertyProblems:
    for item in exc.problems:
        item["message"] = f"inputs[{index}]: {item['message']}"
    return exc


def batch_read(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    body = json_object(request)
    history = body.get("propertiesWithHistory") or []
    inputs = inputs_of(body, maximum=50 if history else 100)
    names = body.get("properties")
    started = emu.now()
    with emu.lock:
        results, missing = [], []
        for key in _ids(inputs):
            rec = lookup(emu, type_, key, body.get("idProperty"), bool_param(request, "archived"))
            if rec is None:
                missing.append(key)
                continue
            item = record_json(rec, names, emu.store.props[type_])
            if history:
                item["propertiesWithHistory"] = history_json(rec, history)
            results.append(item)
        errors = [not_found_error(type_, missing)] if missing else []
        return batch_answer(emu, started, results, errors, 200)


def batch_create(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    inputs = inputs_of(json_object(request))
    started = emu.now()
    with emu.lock:
        planned: list[tuple[Props, list[tuple[str, int, int]], str | None]] = []
        try:
            for i, item in enumerate(inputs):
                try:
                    changes = check_props(emu, type_, item.get("properties"), creating=True)
                except PropertyProblems as exc:
                    raise _indexed(i, exc) from None
                planned.append((changes, parse_links(emu, type_, item.get("associations")),
                                item.get("objectWriteTraceId")))
            if emu.batch_conflicts == "whole":
                _precheck(emu, type_, [(None, p[0]) for p in planned])
        except HttpError:
            writelog.all_refused(emu, type_, inputs)
            raise
        results, errors = [], []
        for changes, links, trace in planned:
            try:
                rec = emu.store.create(type_, changes, emu.now(), links=links)
            except Conflict as exc:
                writelog.refused(emu, type_, changes)
                errors.append(conflict_error(type_, exc, trace))
                continue
            writelog.logged(emu, type_, rec.props, "created")
            results.append(_written(emu, rec, trace))
        return batch_answer(emu, started, results, errors, 201)


def _written(emu: HubSpotEmulator, rec: Record, trace: Any, **extra: Any) -> dict[str, Any]:
    out = record_json(rec, None, emu.store.props[rec.type], everything=True)
    if trace is not None:
        out["objectWriteTraceId"] = str(trace)
    out.update(extra)
    return out


def _precheck(emu: HubSpotEmulator, type_: str, planned: list[tuple[int | None, Props]]) -> None:
    """batch_conflicts="whole": the first unique conflict (with stored data or inside the
    batch) fails the whole batch before anything is written."""
    seen: dict[tuple[str, str], int | None] = {}
    for own_id, changes in planned:
        try:
            emu.store.check_unique(type_, changes, own_id)
            for (t, prop) in emu.store.unique:
                value = changes.get(prop)
                if t == type_ and value is not None:
                    if (prop, value) in seen and seen[(prop, value)] != own_id:
                        raise Conflict(prop, value, seen[(prop, value)] or 0)
                    seen[(prop, value)] = own_id
        except Conflict as exc:
            raise_conflict(type_, exc)


def batch_update(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    body = json_object(request)
    inputs = inputs_of(body)
    keys = _ids(inputs)
    _no_duplicates(keys)
    started = emu.now()
    with emu.lock:
        planned: list[tuple[Record, Props, Any]] = []
        missing = []
        for i, (key, item) in enumerate(zip(keys, inputs, strict=True)):
            rec = lookup(emu, type_, key, item.get("idProperty"))
            if rec is None:
                missing.append(key)
                continue
            try:
                changes = check_props(emu, type_, item.get("properties"), creating=False,
                                      current=rec)
            except PropertyProblems as exc:
                raise _indexed(i, exc) from None
            planned.append((rec, changes, item.get("objectWriteTraceId")))
        if emu.batch_conflicts == "whole":
            _precheck(emu, type_, [(r.id, c) for r, c, _ in planned])
        results: list[dict[str, Any]] = []
        errors = [not_found_error(type_, missing, "update")] if missing else []
        for rec, changes, trace in planned:
            try:
                new = emu.store.update(emu.store.objects[type_][rec.id], changes, emu.now())
            except Conflict as exc:
                errors.append(conflict_error(type_, exc, trace))
                continue
            writelog.logged(emu, type_, new.props, "updated")
            results.append(_written(emu, new, trace))
        return batch_answer(emu, started, results, errors, 200)


def batch_archive(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    keys = _ids(inputs_of(json_object(request)))
    with emu.lock:
        for key in keys:
            rec = emu.store.get(type_, key)
            if rec is not None:
                emu.store.archive(rec, emu.now())
    return Response.empty(204)


def batch_upsert(emu: HubSpotEmulator, type_: str, request: Request) -> Response:
    inputs = inputs_of(json_object(request))
    keys = _ids(inputs)
    _no_duplicates(keys)
    started = emu.now()
    with emu.lock:
        store = emu.store
        planned: list[tuple[Record | None, Props, Any]] = []
        for i, (key, item) in enumerate(zip(keys, inputs, strict=True)):
            id_prop = item.get("idProperty")
            if not isinstance(id_prop, str) or id_prop not in store.props[type_]:
                invalid(f"inputs[{i}]: idProperty {id_prop!r} does not exist")
            if id_prop == "hs_object_id" or not store.is_unique(type_, id_prop):
                invalid(f"inputs[{i}]: {id_prop} can't be used as idProperty for upsert: "
                        "it must be a property with hasUniqueValue=true")
            rec = store.find(type_, id_prop, key)
            raw = dict(item.get("properties") or {})
            raw[id_prop] = key
            try:
                changes = check_props(emu, type_, raw, creating=rec is None, current=rec)
            except PropertyProblems as exc:
                raise _indexed(i, exc) from None
            planned.append((rec, changes, item.get("objectWriteTraceId")))
        if emu.batch_conflicts == "whole":
            _precheck(emu, type_, [(r.id if r else None, c) for r, c, _ in planned])
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for rec, changes, trace in planned:
            try:
                if rec is None:
                    new = store.create(type_, changes, emu.now())
                else:
                    new = store.update(store.objects[type_][rec.id], changes, emu.now())
            except Conflict as exc:
                writelog.refused(emu, type_, changes)
                errors.append(conflict_error(type_, exc, trace))
                continue
            writelog.logged(emu, type_, new.props, "created" if rec is None else "resent")
            results.append(_written(emu, new, trace, new=rec is None))
        return batch_answer(emu, started, results, errors, 200)
