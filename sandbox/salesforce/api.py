"""REST routes: logins, versions, resources, limits, query/queryAll/nextRecordsUrl and sObjects.

Every `/services/data/vXX.X/...` route except the version list needs a live session (401
INVALID_SESSION_ID otherwise) and counts one call against the org's daily budget (403
REQUEST_LIMIT_EXCEEDED once it is spent). Paths work with and without a trailing slash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.messages import Request, Response
from sandbox.salesforce.auth import Session
from sandbox.salesforce.cursors import batch_size, page
from sandbox.salesforce.describe import (
    API_VERSIONS,
    describe,
    global_describe,
    limits_body,
    object_summary,
    resources,
    versions,
)
from sandbox.salesforce.errors import SFError, error_response, invalid_session, json_parser_error
from sandbox.salesforce.evaluator import compile_query
from sandbox.salesforce.identity import identity, login_base
from sandbox.salesforce.ids import format_datetime, parse_datetime
from sandbox.salesforce.paths import render
from sandbox.salesforce.store import Table

if TYPE_CHECKING:
    from sandbox.salesforce.emulator import SalesforceEmulator

V = r"/services/data/v(?P<version>\d+\.\d+)"
T = r"(?P<sobject>\w+)"


@dataclass
class Call:
    request: Request
    session: Session
    version: str


ApiHandler = Callable[[Call], Response]


def body_json(request: Request) -> Any:
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise json_parser_error(f"Unexpected character: {exc}") from None


def body_object(request: Request) -> dict[str, Any]:
    data = body_json(request)
    if not isinstance(data, dict):
        raise json_parser_error("Cannot deserialize instance of sObject from the request body")
    return data


def record_json(table: Table, record_id: str, version: str,
                only: list[str] | None = None) -> dict[str, Any]:
    row = table.rows[record_id]
    name = table.sobject.name
    out: dict[str, Any] = {"attributes": {
        "type": name, "url": f"/services/data/v{version}/sobjects/{name}/{record_id}"}}
    for field_name, slot in table.slots.items():
        if only is None or field_name in only:
            out[field_name] = render(row[slot])
    return out


class Api:
    def __init__(self, emulator: SalesforceEmulator) -> None:
        self.emu = emulator

    def guarded(self, handler: ApiHandler) -> Callable[[Request], Response]:
        emu = self.emu

        def run(request: Request) -> Response:
            version = request.path_params.get("version", "")
            if version not in API_VERSIONS:
                return error_response(404, "NOT_FOUND", "The requested resource does not exist")
            with emu.lock:
                session = emu.auth.authenticate(request.header("Authorization"), emu.now(),
                                                emu.user_active)
                if session is None:
                    return invalid_session()
                if not emu.consume_api_call():
                    return error_response(403, "REQUEST_LIMIT_EXCEEDED",
                                          "TotalRequests Limit exceeded.")
                try:
                    return handler(Call(request, session, version))
                except SFError as exc:
                    return exc.response()
        return run

    def table(self, call: Call) -> Table:
        table = self.emu.store.table(call.request.path_params["sobject"])
        if table is None:
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        return table

    # -- login ---------------------------------------------------------------------------
    def soap_login(self, request: Request) -> Response:
        emu = self.emu
        with emu.lock:
            return emu.auth.soap_login(request.body, emu.base_url(request),
                                       request.path_params.get("version", "64.0"), emu.now(),
                                       emu.user_active)

    def oauth_token(self, request: Request) -> Response:
        emu = self.emu
        with emu.lock:
            return emu.auth.oauth_token(request.body, emu.base_url(request), emu.now(),
                                        emu.user_active,
                                        authorization=request.header("Authorization"),
                                        host=request.header("Host") or "",
                                        identity_base=login_base(emu, request))

    # -- metadata ------------------------------------------------------------------------
    def versions(self, request: Request) -> Response:
        return Response.json(200, versions())

    def resources(self, call: Call) -> Response:
        return Response.json(200, resources(call.version))

    def limits(self, call: Call) -> Response:
        return Response.json(200, limits_body(self.emu.api_max, self.emu.api_used))

    def sobjects(self, call: Call) -> Response:
        return Response.json(200, global_describe(self.emu.store, call.version))

    def sobject_info(self, call: Call) -> Response:
        table = self.table(call)
        return Response.json(200, {"objectDescribe": object_summary(table.sobject, call.version),
                                   "recentItems": []})

    def sobject_describe(self, call: Call) -> Response:
        table = self.table(call)
        return Response.json(200, describe(self.emu.store, table.sobject, call.version))

    # -- query ---------------------------------------------------------------------------
    def query(self, call: Call, include_deleted: bool) -> Response:
        emu, request = self.emu, call.request
        compiled = compile_query(emu.store, request.param("q") or "",
                                 include_deleted=include_deleted, now=emu.now())
        ids = compiled.matching_ids()
        if compiled.count_only:
            return Response.json(200, {"totalSize": len(ids), "done": True, "records": []})
        batch = batch_size(request.header("Sforce-Query-Options"))
        records, next_offset = page(compiled, ids, 0, batch, call.version)
        body: dict[str, Any] = {"totalSize": len(ids), "done": next_offset is None}
        if next_offset is not None:
            cursor = emu.cursors.open(call.session.username, compiled, ids, batch, emu.now())
            body["nextRecordsUrl"] = (f"/services/data/v{call.version}/query/"
                                      f"{cursor.id}-{next_offset}")
        body["records"] = records
        return Response.json(200, body)

    def query_more(self, call: Call) -> Response:
        emu, request = self.emu, call.request
        cursor, offset = emu.cursors.get(request.path_params["locator"], call.session.username,
                                         emu.now())
        batch = batch_size(request.header("Sforce-Query-Options"), cursor.batch)
        records, next_offset = page(cursor.compiled, cursor.ids, offset, batch, call.version)
        body: dict[str, Any] = {"totalSize": len(cursor.ids), "done": next_offset is None}
        if next_offset is None:
            emu.cursors.close(cursor.id)
        else:
            body["nextRecordsUrl"] = (f"/services/data/v{call.version}/query/"
                                      f"{cursor.id}-{next_offset}")
        body["records"] = records
        return Response.json(200, body)

    # -- sObject rows --------------------------------------------------------------------
    def create(self, call: Call) -> Response:
        table = self.table(call)
        record_id = self.emu.dml.create(table, body_object(call.request), call.session.user_id)
        return Response.json(201, {"id": record_id, "success": True, "errors": []})

    def get(self, call: Call) -> Response:
        table = self.table(call)
        record_id, _ = self.emu.dml.find(table, unquote(call.request.path_params["id"]))
        return Response.json(200, record_json(table, record_id, call.version,
                                              self._fields(call, table)))

    def _fields(self, call: Call, table: Table) -> list[str] | None:
        wanted = call.request.param("fields")
        if not wanted:
            return None
        names = []
        for name in (n.strip() for n in wanted.split(",") if n.strip()):
            field = table.sobject.field(name)
            if field is None:
                raise SFError.one(400, "INVALID_FIELD", f"No such column '{name}' on entity "
                                  f"'{table.sobject.name}'. If you are attempting to use a custom "
                                  "field, be sure to append the '__c' after the custom field "
                                  "name. Please reference your WSDL or the describe call for "
                                  "the appropriate names.")
            names.append(field.name)
        return ["Id", *names]

    def update(self, call: Call) -> Response:
        table = self.table(call)
        self.emu.dml.update(table, unquote(call.request.path_params["id"]),
                            body_object(call.request), call.session.user_id)
        return Response.empty(204)

    def delete(self, call: Call) -> Response:
        table = self.table(call)
        self.emu.dml.delete(table, unquote(call.request.path_params["id"]), call.session.user_id)
        return Response.empty(204)

    def _by_key(self, call: Call) -> tuple[Table, str, str]:
        table = self.table(call)
        field = table.sobject.field(call.request.path_params["field"])
        if field is None or not (field.external_id or field.name == "Id"):
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        return table, field.name, unquote(call.request.path_params["value"])

    def _single_match(self, call: Call) -> tuple[Table, str]:
        table, field, value = self._by_key(call)
        if field == "Id":
            return table, self.emu.dml.find(table, value)[0]
        matches = self.emu.dml.matches_by_key(table, field, value)
        if not matches:
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        if len(matches) > 1:
            raise SFError(300, [])
        return table, matches[0]

    def _multiple_choices(self, call: Call, table: Table, field: str, value: str) -> Response:
        matches = self.emu.dml.matches_by_key(table, field, value)
        return Response.json(300, [f"/services/data/v{call.version}/sobjects/"
                                   f"{table.sobject.name}/{i}" for i in matches])

    def get_by_key(self, call: Call) -> Response:
        try:
            table, record_id = self._single_match(call)
        except SFError as exc:
            if exc.status != 300:
                raise
            return self._multiple_choices(call, *self._by_key(call))
        return Response.json(200, record_json(table, record_id, call.version))

    def delete_by_key(self, call: Call) -> Response:
        try:
            table, record_id = self._single_match(call)
        except SFError as exc:
            if exc.status != 300:
                raise
            return self._multiple_choices(call, *self._by_key(call))
        self.emu.dml.delete(table, record_id, call.session.user_id)
        return Response.empty(204)

    def upsert(self, call: Call) -> Response:
        table, field, value = self._by_key(call)
        if call.request.param("updateOnly") == "true" and field != "Id" and not \
                self.emu.dml.matches_by_key(table, field, value):
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            record_id, created = self.emu.dml.upsert(table, field, value,
                                                     body_object(call.request),
                                                     call.session.user_id)
        except SFError as exc:
            if exc.status != 300:
                raise
            return self._multiple_choices(call, table, field, value)
        body = {"id": record_id, "success": True, "errors": [], "created": created}
        if float(call.version) < 46 and not created:
            return Response.empty(204)  # before API 46.0 an update by upsert had no body
        return Response.json(201 if created else 200, body)

    # -- getUpdated / getDeleted ---------------------------------------------------------
    def _window(self, call: Call) -> tuple[Any, Any]:
        start = parse_datetime(call.request.param("start") or "")
        end = parse_datetime(call.request.param("end") or "")
        if start is None or end is None or start >= end:
            raise SFError.one(400, "INVALID_REPLICATION_DATE",
                              "start date must chronologically precede end date")
        return start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)

    def updated(self, call: Call) -> Response:
        table = self.table(call)
        start, end = self._window(call)
        stamp = table.slot("SystemModstamp")
        ids = [i for i, row in table.live_rows() if start <= row[stamp] < end]
        return Response.json(200, {"ids": ids, "latestDateCovered": format_datetime(
            min(end, self.emu.now()))})

    def deleted(self, call: Call) -> Response:
        table = self.table(call)
        start, end = self._window(call)
        stamp = table.slot("SystemModstamp")
        records = [{"id": i, "deletedDate": format_datetime(row[stamp])}
                   for i, row in table.rows.items()
                   if table.is_deleted(row) and start <= row[stamp] < end]
        now = self.emu.now()
        return Response.json(200, {
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(now - timedelta(days=15)),
            "latestDateCovered": format_datetime(min(end, now))})


def register_api_routes(emu: SalesforceEmulator) -> None:
    from sandbox.salesforce.bulk import register_bulk_routes
    from sandbox.salesforce.collections import Collections

    api = Api(emu)
    coll = Collections(api)
    g = api.guarded
    add = emu.add_route
    add("POST", r"/services/Soap/u/(?P<version>\d+\.\d+)(?:/.*)?", "soap_login", api.soap_login)
    add("POST", r"/services/oauth2/token/?", "oauth_token", api.oauth_token)
    add("GET", r"/services/data/?", "versions", api.versions)
    add("GET", r"/id/(?P<org>00D\w+)/(?P<user>005\w+)/?", "identity",
        lambda request: identity(emu, request))
    add("GET", V + "/?", "resources", g(api.resources))
    add("GET", V + "/limits/?", "limits", g(api.limits))
    add("GET", V + "/query/?", "query", g(lambda c: api.query(c, False)))
    add("GET", V + "/queryAll/?", "query_all", g(lambda c: api.query(c, True)))
    add("GET", V + r"/(?:query|queryAll)/(?P<locator>[\w-]+)/?", "query_more", g(api.query_more))
    add("GET", V + "/sobjects/?", "sobjects", g(api.sobjects))
    add("GET", V + f"/sobjects/{T}/?", "sobject_info", g(api.sobject_info))
    add("POST", V + f"/sobjects/{T}/?", "sobject_create", g(api.create))
    add("GET", V + f"/sobjects/{T}/describe/?", "sobject_describe", g(api.sobject_describe))
    add("GET", V + f"/sobjects/{T}/updated/?", "sobject_updated", g(api.updated))
    add("GET", V + f"/sobjects/{T}/deleted/?", "sobject_deleted", g(api.deleted))
    add("GET", V + f"/sobjects/{T}/(?P<id>[^/]+)/?", "sobject_get", g(api.get))
    add("PATCH", V + f"/sobjects/{T}/(?P<id>[^/]+)/?", "sobject_update", g(api.update))
    add("DELETE", V + f"/sobjects/{T}/(?P<id>[^/]+)/?", "sobject_delete", g(api.delete))
    key = f"/sobjects/{T}/(?P<field>\\w+)/(?P<value>[^/]+)/?"
    add("GET", V + key, "sobject_get_by_external_id", g(api.get_by_key))
    add("PATCH", V + key, "sobject_upsert", g(api.upsert))
    add("DELETE", V + key, "sobject_delete_by_external_id", g(api.delete_by_key))
    add("POST", V + "/composite/sobjects/?", "collections_create", g(coll.create))
    add("PATCH", V + "/composite/sobjects/?", "collections_update", g(coll.update))
    add("DELETE", V + "/composite/sobjects/?", "collections_delete", g(coll.delete))
    add("GET", V + f"/composite/sobjects/{T}/?", "collections_retrieve", g(coll.retrieve))
    add("POST", V + f"/composite/sobjects/{T}/?", "collections_retrieve_body",
        g(coll.retrieve_body))
    add("PATCH", V + f"/composite/sobjects/{T}/(?P<field>\\w+)/?", "collections_upsert",
        g(coll.upsert))
    register_bulk_routes(emu, api)
