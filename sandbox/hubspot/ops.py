"""Operations shared by the public object routes and the admin API: checked writes, lookups,
association parsing and the JSON shapes of batch answers. Callers hold the emulator lock."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from sandbox.hubspot.errors import (
    PropertyProblems,
    error,
    fail,
    invalid,
    problem,
)
from sandbox.hubspot.schema import ASSOC_TYPES, OBJECT_TYPES, object_type
from sandbox.hubspot.store import Conflict, Props, Record
from sandbox.hubspot.values import check_stage, iso_ms, validate
from sandbox.messages import HttpError, Request, Response

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator

REQUIRED_ON_CREATE = dict.fromkeys(("tasks", "calls", "meetings", "emails", "notes"),
                                   ("hs_timestamp",))


# -- query parameters ------------------------------------------------------------------------
def names_param(request: Request, name: str) -> list[str] | None:
    """`a&a` repeated or comma-separated values (the SDK repeats the key)."""
    values = request.query.get(name)
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def bool_param(request: Request, name: str) -> bool:
    """A boolean query parameter: `true` / `false` (any case: the Python SDK sends `True` /
    `False` when given a bool); left out means false; anything else is a 400, as HubSpot
    answers a value it cannot read as a boolean."""
    raw = request.param(name)
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value not in ("true", "false"):
        invalid(f"Unable to parse {name}: {raw!r} is not a boolean (true or false)",
                context={name: [raw]})
    return value == "true"


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.param(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        invalid(f"{name} must be an integer, got {raw!r}")
    if value < 1 or value > maximum:
        invalid(f"{name} must be between 1 and {maximum}, got {value}",
                context={name: [str(value)]})
    return value


# -- checked writes --------------------------------------------------------------------------
def check_props(emu: HubSpotEmulator, type_: str, raw: Any, *, creating: bool,
                admin: bool = False, current: Record | None = None) -> Props:
    """Validate a `properties` object (PropertyProblems on failure)."""
    store = emu.store
    changes = validate(store.props[type_], raw, store.owner_exists, admin=admin)
    if creating and not admin:
        missing = [n for n in REQUIRED_ON_CREATE.get(type_, ()) if not changes.get(n)]
        if missing:
            raise PropertyProblems([problem(n, "REQUIRED_PROPERTY", f"{n} not set")
                                    for n in missing])
    if type_ == "deals":
        check_stage(current.props if current else {}, changes)
    return changes


def parse_links(emu: HubSpotEmulator, type_: str, raw: Any) -> list[tuple[str, int, int]]:
    """Inline `associations` of a create: [{to: {id}, types: [{associationCategory,
    associationTypeId}]}]; every target must exist (400 otherwise)."""
    if raw in (None, []):
        return []
    if not isinstance(raw, list):
        invalid("associations must be a list")
    links: list[tuple[str, int, int]] = []
    for item in raw:
        to = item.get("to") if isinstance(item, dict) else None
        target = to.get("id") if isinstance(to, dict) else None
        types = item.get("types") if isinstance(item, dict) else None
        if target is None or not isinstance(types, list) or not types:
            invalid("each association needs 'to': {'id'} and a non-empty 'types' list")
        for spec in types:
            category = spec.get("associationCategory") if isinstance(spec, dict) else None
            try:
                type_id = int(spec.get("associationTypeId"))
            except (TypeError, ValueError, AttributeError):
                type_id = -1
            assoc = ASSOC_TYPES.get(type_id)
            if category != "HUBSPOT_DEFINED" or assoc is None or assoc.from_type != type_:
                invalid(f"Invalid association type {category}/{type_id} from "
                        f"{OBJECT_TYPES[type_].singular}", context={"typeId": [str(type_id)]})
            if emu.store.get(assoc.to_type, str(target)) is None:
                invalid(f"One or more associations are invalid: "
                        f"{OBJECT_TYPES[assoc.to_type].singular} {target} does not exist",
                        context={"toObjectId": [str(target)], "typeId": [str(type_id)]})
            links.append((assoc.to_type, int(str(target)), type_id))
    return links


def conflict_message(type_: str, exc: Conflict) -> str:
    return (f"A {OBJECT_TYPES[type_].singular} with {exc.prop}={exc.value} already exists. "
            f"Existing ID: {exc.existing}")


def conflict_error(type_: str, exc: Conflict, trace: str | None = None) -> dict[str, Any]:
    """StandardError for a unique-value conflict inside a batch."""
    context = {"propertyName": [exc.prop], "propertyValue": [exc.value],
               "existingId": [str(exc.existing)]}
    if trace:
        context["objectWriteTraceId"] = [trace]
    return {"status": "error", "category": "CONFLICT", "message": conflict_message(type_, exc),
            "context": context, "links": {}, "errors": []}


def conflict_response(type_: str, exc: Conflict) -> Response:
    return error(409, "CONFLICT", conflict_message(type_, exc),
                 context={"propertyName": [exc.prop], "existingId": [str(exc.existing)]})


def create_object(emu: HubSpotEmulator, type_: str, raw_props: Any, raw_links: Any, *,
                  admin: bool = False, obj_id: int | None = None) -> Record:
    changes = check_props(emu, type_, raw_props, creating=True, admin=admin)
    links = parse_links(emu, type_, raw_links)
    try:
        return emu.store.create(type_, changes, emu.now(), obj_id=obj_id, links=links)
    except Conflict as exc:
        raise_conflict(type_, exc)


def update_object(emu: HubSpotEmulator, rec: Record, raw_props: Any, *,
                  admin: bool = False) -> Record:
    changes = check_props(emu, rec.type, raw_props, creating=False, admin=admin, current=rec)
    try:
        return emu.store.update(rec, changes, emu.now())
    except Conflict as exc:
        raise_conflict(rec.type, exc)


def raise_conflict(type_: str, exc: Conflict) -> NoReturn:
    raise HttpError(conflict_response(type_, exc)) from exc


def lookup(emu: HubSpotEmulator, type_: str, key: str, id_prop: str | None,
           archived: bool = False) -> Record | None:
    """By id, or by the value of a unique property (`idProperty`)."""
    if id_prop and id_prop != "hs_object_id":
        if id_prop not in emu.store.props[type_]:
            invalid(f'Property "{id_prop}" does not exist')
        if not emu.store.is_unique(type_, id_prop):
            invalid(f"{id_prop} is not a unique identifier property for "
                    f"{OBJECT_TYPES[type_].name} (hasUniqueValue is false)")
        return emu.store.find(type_, id_prop, key, archived=archived)
    return emu.store.get(type_, key, archived=archived)


def missing_object(type_: str, key: str) -> NoReturn:
    fail(404, "OBJECT_NOT_FOUND",
         f"Object not found. {OBJECT_TYPES[type_].singular} {key} does not exist or is archived.")


# -- shapes ----------------------------------------------------------------------------------
def assoc_json(emu: HubSpotEmulator, rec: Record, wanted: list[str] | None) -> dict[str, Any]:
    """v3 `associations`: one entry per (id, type), so an id can appear twice (reference §2)."""
    out: dict[str, Any] = {}
    for name in wanted or ():
        target = object_type(name)
        if target is None:
            continue
        linked = emu.store.linked(rec.type, rec.id, target.name)
        results = [{"id": str(to_id), "type": ASSOC_TYPES[k].name}
                   for to_id, kinds in linked.items() for k in kinds]
        if results:
            out[target.name] = {"results": results}
    return out


def history_json(rec: Record, names: list[str]) -> dict[str, Any]:
    """propertiesWithHistory: the emulator keeps the current value only."""
    return {n: [{"value": rec.props[n], "timestamp": rec.updated, "sourceType": "API"}]
            for n in names if n in rec.props}


def batch_answer(emu: HubSpotEmulator, started: datetime, results: list[dict[str, Any]],
                 errors: list[dict[str, Any]], ok_status: int) -> Response:
    """BatchResponse…: results in an order unrelated to the inputs (reversed), 207 on errors."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": list(reversed(results)),
                            "requestedAt": iso_ms(started), "startedAt": iso_ms(started),
                            "completedAt": iso_ms(emu.now()), "links": {}}
    if errors:
        body["numErrors"] = len(errors)
        body["errors"] = errors
        return Response.json(207, body)
    return Response.json(ok_status, body)


def not_found_error(type_: str, ids: list[str], verb: str = "get") -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not {verb} some {OBJECT_TYPES[type_].singular.upper()} objects, "
                       "they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": ids}, "links": {}, "errors": []}
