"""Everything around the objects: pipelines, owners, properties and property groups,
associations v4 and OAuth (reference §1.1, §2, §3, §4, §5)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from sandbox.hubspot.errors import error, fail, inputs_of, invalid, json_object
from sandbox.hubspot.ops import bool_param, int_param
from sandbox.hubspot.schema import (
    ASSOC_TYPES,
    OBJECT_TYPES,
    PAIR_TYPES,
    PIPELINES,
    PROPERTY_TYPES,
    ObjectType,
    PropDef,
    object_type,
)
from sandbox.hubspot.values import iso_ms
from sandbox.messages import HttpError, Request, Response

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator

V4_PAGE = 500
_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")
_T = "(?P<type>[^/]+)"


def register(emu: HubSpotEmulator) -> None:
    def add(method: str, pattern: str, endpoint: str, fn: Any, **kw: Any) -> None:
        emu.add_route(method, pattern, endpoint, emu.api(lambda r: fn(emu, r), **kw))

    add("GET", "/crm/v3/pipelines/(?:deals|0-3)/?", "pipelines.list", pipelines_list)
    add("GET", "/crm/v3/pipelines/(?:deals|0-3)/(?P<id>[^/]+)", "pipelines.get", pipeline_get)
    add("GET", "/crm/v3/owners/?", "owners.list", owners_list)
    add("GET", "/crm/v3/owners/(?P<id>[^/]+)", "owners.get", owner_get)
    add("GET", f"/crm/v3/properties/{_T}/groups/?", "properties.groups", groups_list)
    add("GET", f"/crm/v3/properties/{_T}/?", "properties.list", properties_list)
    add("POST", f"/crm/v3/properties/{_T}/?", "properties.create", property_create)
    add("GET", f"/crm/v3/properties/{_T}/(?P<name>[^/]+)", "properties.get", property_get)
    v4 = "/crm/v4/associations/(?P<from>[^/]+)/(?P<to>[^/]+)"
    add("POST", v4 + "/batch/read", "associations.v4.batch.read", v4_batch_read)
    add("GET", v4 + "/labels", "associations.v4.labels", v4_labels)
    add("GET", "/crm/v4/objects/(?P<from>[^/]+)/(?P<id>[^/]+)/associations/(?P<to>[^/]+)",
        "associations.v4.list", v4_list)
    add("POST", "/oauth/v1/token", "oauth.token", oauth_token, auth=False)
    add("GET", "/oauth/v1/access-tokens/(?P<token>[^/]+)", "oauth.token_info", oauth_info,
        auth=False)


def _type(name: str) -> ObjectType:
    found = object_type(name)
    if found is None:
        invalid(f"Unable to infer object type from: {name}")
    return found


def _cursor(value: str | None) -> int:
    """Owners and v4 associations page with base64(next id) cursors (`MTE=` = "11")."""
    if not value:
        return 0
    try:
        return int(base64.b64decode(value, validate=True).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        invalid(f"Invalid paging cursor: {value}")


def _encode(number: int) -> str:
    return base64.b64encode(str(number).encode()).decode()


# -- pipelines -------------------------------------------------------------------------------
def pipelines_list(emu: HubSpotEmulator, request: Request) -> Response:
    if bool_param(request, "archived"):
        return Response.json(200, {"results": []})
    return Response.json(200, {"results": [p.to_json(i) for i, p in enumerate(PIPELINES)]})


def pipeline_get(emu: HubSpotEmulator, request: Request) -> Response:
    for i, pipeline in enumerate(PIPELINES):
        if pipeline.id == request.path_params["id"]:
            return Response.json(200, pipeline.to_json(i))
    fail(404, "OBJECT_NOT_FOUND", f"Pipeline {request.path_params['id']} does not exist")


# -- owners ----------------------------------------------------------------------------------
def owners_list(emu: HubSpotEmulator, request: Request) -> Response:
    """Active owners, or with `archived=true` only the archived (deactivated) ones."""
    limit = int_param(request, "limit", 100, 100)
    archived = bool_param(request, "archived")
    email = (request.param("email") or "").lower()
    start = _cursor(request.param("after"))
    with emu.lock:
        owners = sorted((o for o in emu.store.owners.values()
                         if o.archived == archived and o.id >= start
                         and (not email or o.email.lower() == email)), key=lambda o: o.id)
        results = [o.to_json() for o in owners[:limit]]
    body: dict[str, Any] = {"results": results}
    if len(owners) > limit:
        after = _encode(owners[limit].id)
        body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
    return Response.json(200, body)


def owner_get(emu: HubSpotEmulator, request: Request) -> Response:
    key = request.path_params["id"]
    by = request.param("idProperty") or "id"
    if by not in ("id", "userId"):
        invalid(f"idProperty must be id or userId, got {by}")
    archived = bool_param(request, "archived")
    with emu.lock:
        for owner in emu.store.owners.values():
            value = owner.id if by == "id" else owner.user_id
            if str(value) == key and owner.archived == archived:
                return Response.json(200, owner.to_json())
    fail(404, "OBJECT_NOT_FOUND", f"Owner {key} not found")


# -- properties ------------------------------------------------------------------------------
def groups_list(emu: HubSpotEmulator, request: Request) -> Response:
    meta = _type(request.path_params["type"])
    groups = emu.store.groups[meta.name]
    return Response.json(200, {"results": [
        {"name": n, "label": label, "displayOrder": i, "archived": False}
        for i, (n, label) in enumerate(groups)]})


def properties_list(emu: HubSpotEmulator, request: Request) -> Response:
    meta = _type(request.path_params["type"])
    if bool_param(request, "archived"):
        return Response.json(200, {"results": []})
    with emu.lock:
        return Response.json(200, {"results": [
            p.to_json() for p in emu.store.props[meta.name].values()]})


def property_get(emu: HubSpotEmulator, request: Request) -> Response:
    meta = _type(request.path_params["type"])
    name = request.path_params["name"]
    with emu.lock:
        prop = emu.store.props[meta.name].get(name)
        if prop is None:
            fail(404, "OBJECT_NOT_FOUND",
                 f"Unable to find property {name} for object type {meta.type_id}")
        return Response.json(200, prop.to_json())


def property_create(emu: HubSpotEmulator, request: Request) -> Response:
    meta = _type(request.path_params["type"])
    with emu.lock:
        prop = create_property(emu, meta.name, json_object(request))
        return Response.json(201, prop.to_json())


def create_property(emu: HubSpotEmulator, type_: str, body: dict[str, Any]) -> PropDef:
    """PropertyCreate: name, label, type, fieldType and groupName are required; a name in
    use answers 409 CONFLICT; `hasUniqueValue` can only be set here."""
    missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
    if missing:
        invalid(f"Missing required fields: {', '.join(missing)}",
                context={"missingFields": missing})
    name, kind, field_type = str(body["name"]), str(body["type"]), str(body["fieldType"])
    if not _NAME.fullmatch(name):
        invalid(f"Invalid property name {name!r}: use lowercase letters, digits and '_', "
                "starting with a letter")
    if kind not in PROPERTY_TYPES:
        invalid(f"Invalid property type {kind!r}; use one of {sorted(PROPERTY_TYPES)}")
    if field_type not in PROPERTY_TYPES[kind]:
        invalid(f"fieldType {field_type!r} is not valid for type {kind!r}")
    groups = [g for g, _ in emu.store.groups[type_]]
    if body["groupName"] not in groups:
        invalid(f"Property group {body['groupName']!r} does not exist for "
                f"{OBJECT_TYPES[type_].singular}; use one of {groups}")
    if name in emu.store.props[type_]:
        raise HttpError(error(409, "CONFLICT", f"A property named '{name}' already exists.",
                              context={"name": [name]}))
    options = body.get("options") or []
    if kind == "bool" and not options:
        options = [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]
    if not isinstance(options, list) or not all(
            isinstance(o, dict) and "value" in o and "label" in o for o in options):
        invalid("options must be a list of {label, value}")
    if kind == "enumeration" and not options:
        invalid("An enumeration property needs at least one option")
    prop = PropDef(name, str(body["label"]), kind, field_type, str(body["groupName"]),
                   options=[(str(o["value"]), str(o["label"])) for o in options],
                   hubspot_defined=False, unique=bool(body.get("hasUniqueValue", False)),
                   description=str(body.get("description") or ""), created=iso_ms(emu.now()),
                   order=int(body.get("displayOrder", -1)))
    emu.store.add_property(type_, prop)
    return prop


# -- associations v4 -------------------------------------------------------------------------
def _pair(request: Request) -> tuple[ObjectType, ObjectType]:
    src, dst = _type(request.path_params["from"]), _type(request.path_params["to"])
    if (src.name, dst.name) not in PAIR_TYPES:
        invalid(f"No association types between {src.singular} and {dst.singular}")
    return src, dst


def _targets(emu: HubSpotEmulator, src: str, key: str, dst: str, after: int, limit: int
             ) -> tuple[bool, list[dict[str, Any]], str | None]:
    """(has any link, one page of MultiAssociatedObjectWithLabel, next cursor)."""
    linked = emu.store.linked(src, int(key), dst) if key.isdigit() else {}
    ids = [i for i in linked if i >= after]
    page = [{"toObjectId": i, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": k, "label": ASSOC_TYPES[k].label}
        for k in linked[i]]} for i in ids[:limit]]
    return bool(linked), page, _encode(ids[limit]) if len(ids) > limit else None


def v4_batch_read(emu: HubSpotEmulator, request: Request) -> Response:
    """200, or 207 where an input has no links at all (NO_ASSOCIATIONS_FOUND, reference §2)."""
    src, dst = _pair(request)
    inputs = inputs_of(json_object(request), maximum=1000)
    started = emu.now()
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    with emu.lock:
        for item in inputs:
            key = str(item.get("id", ""))
            found, page, nxt = _targets(emu, src.name, key, dst.name,
                                        _cursor(item.get("after")), V4_PAGE)
            if not found:
                errors.append({
                    "status": "error", "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": f"No {dst.singular} is associated with {src.singular} {key}.",
                    "context": {"fromObjectId": [key], "fromObjectType": [src.singular],
                                "toObjectType": [dst.singular]},
                    "links": {}, "errors": []})
                continue
            result: dict[str, Any] = {"from": {"id": key}, "to": page}
            if nxt:
                result["paging"] = {"next": {"after": nxt, "link": None}}
            results.append(result)
    body: dict[str, Any] = {"status": "COMPLETE", "results": results,
                            "requestedAt": iso_ms(started), "startedAt": iso_ms(started),
                            "completedAt": iso_ms(emu.now())}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
    return Response.json(207 if errors else 200, body)


def v4_labels(emu: HubSpotEmulator, request: Request) -> Response:
    src, dst = _pair(request)
    return Response.json(200, {"results": [
        {"category": "HUBSPOT_DEFINED", "typeId": k, "label": ASSOC_TYPES[k].label}
        for k in PAIR_TYPES[(src.name, dst.name)]]})


def v4_list(emu: HubSpotEmulator, request: Request) -> Response:
    src, dst = _pair(request)
    limit = int_param(request, "limit", V4_PAGE, V4_PAGE)
    with emu.lock:
        _, page, nxt = _targets(emu, src.name, request.path_params["id"], dst.name,
                                _cursor(request.param("after")), limit)
    body: dict[str, Any] = {"results": page}
    if nxt:
        body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
    return Response.json(200, body)


# -- OAuth -----------------------------------------------------------------------------------
def oauth_token(emu: HubSpotEmulator, request: Request) -> Response:
    form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    return emu.auth.token(form, emu.now())


def oauth_info(emu: HubSpotEmulator, request: Request) -> Response:
    return emu.auth.token_info(request.path_params["token"], emu.now())
