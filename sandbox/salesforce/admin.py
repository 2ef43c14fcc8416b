"""Admin API under /__sandbox/ (never counted, never faulted): seed data, read and change records,
set limits, expire sessions, add logins and connected apps, inject row locks, runtime options.

    POST   seed                    {"generate": {"deals": N, "seed": S, ...}} | {"records": {...}}
                                   ("activities": A also logs A calls, emails, meetings and
                                   open tasks over the deals)
    GET    tasks                   every Task, deleted ones too, all fields
    GET    records/<SObject>       every record (?include_deleted=false to hide deleted)
    POST   records/<SObject>       one record (object) or several (list), admin write
    GET    records/<SObject>/<id>  one record, deleted or not
    PATCH  records/<SObject>/<id>  change fields (system fields too); stamps move
    DELETE records/<SObject>/<id>  soft delete (cascades like the API)
    GET    limits / POST limits    {"daily_api_requests": M, "used": N}
    POST   sessions/expire         {} or {"username": u}; "and_next": n also revokes the
                                   next n sessions as soon as they are issued
    POST   users                   {"username", "password", "security_token", ...}
    POST   oauth/apps              {"consumer_key", "consumer_secret", "certificate"?,
                                   "preauthorized"?: [usernames], "run_as"?: username}
    POST   locks                   {"ids": [...], "next": N, "rate": r} | {"clear": true}
    POST   options                 run-time options (see emulator.RUNTIME_OPTIONS)
    GET    cursors                 {"open": n}
    GET    bulk / POST bulk        Bulk API 2.0 query jobs: {"jobs", "states", "denied",
                                   "fail_next"}; POST {"deny": [usernames], "allow":
                                   [usernames], "fail_next": n, "error"?: message} withdraws
                                   or grants a user's Bulk API permission, or makes the next
                                   n jobs end Failed with that errorMessage
    POST   picklists               {"TaskStatus": [{"value", "label"?, "default"?, "closed"?}],
                                    "TaskPriority": [{"value", "label"?, "default"?, "high"?}]}
                                   the org's own task status / priority values
    POST   activities              a rep logs an activity: {"kind": call|email|task|meeting,
                                   "at"?: ISO (default: the emulator clock), "what"?: deal or
                                   account id, "who"?: contact id, "owner"?: user id,
                                   "subject"?} -> {"id", "sobject"} (call/email: a completed
                                   Task of that subtype; task: an open Task; meeting: an Event)
    POST   activities/complete     a rep completes a task: {"id", "at"?} (Status: the closed
                                   TaskStatus; CompletedDateTime: at, or the emulator clock)
           (delete an activity: DELETE records/Task|Event/<id>; set deal fields, e.g. the
           opt-out checkbox Winback_Opt_Out__c and Winback_Pause_Until__c: PATCH
           records/Opportunity/<id>)
    POST   prospects               the prospect simulator (sandbox/prospects.py): {"seed": 0,
                                   "base": 0.1, "completed": {"post-mortem": 0.2}, "days":
                                   [30, 80], "new_deal_share": 0.0, "reps": {"complete": 1.0,
                                   "after_days": 1}} (all optional; these are the defaults)
                                   -> the config, replacing the last; 400 {"message", "field"}
    GET    prospects               {"config"|null, "decided": [{"deal", "lost_on", "decided_on",
                                   "probability", "completed", "reborn", "how", "new_deal"}],
                                   "reborn": n, "completed_tasks": n}
    POST   prospects/run           simulate up to the clock (also done after each POST clock):
                                   reps complete Winback_Key__c Tasks (as activities/complete)
                                   ActivityDate + after_days; lost deals reopen (PATCH
                                   records: first open stage) or get a new deal on AccountId
    DELETE prospects               off (config null, the log kept until reset)
    (core) calls, calls/reset, requests, faults, latency, clock, violations, writes,
           writes/reset, reset, endpoints

The core's `add_admin_route` takes literal paths only, so routes with a type or an id in the
path (`records/<SObject>[/<id>]`) are matched here and served through `dispatch_dynamic`,
which `SalesforceEmulator.handle` calls before the core's dispatch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.core import ADMIN_PREFIX
from sandbox.messages import Request, Response
from sandbox.salesforce.activities import rep_record
from sandbox.salesforce.api import record_json
from sandbox.salesforce.auth import ConnectedApp
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.ids import parse_datetime
from sandbox.salesforce.seeding import FixtureError, seed_generated, seed_records
from sandbox.salesforce.store import Table

if TYPE_CHECKING:
    from sandbox.salesforce.emulator import SalesforceEmulator

VERSION = "68.0"
Dynamic = tuple[str, re.Pattern[str], Callable[[Request, dict[str, str]], Response]]


def _json(request: Request) -> Any:
    if not request.body:
        return {}
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise SFError.one(400, "JSON_PARSER_ERROR", f"invalid JSON body: {exc}") from None


def _bad(message: str, **extra: Any) -> Response:
    return Response.json(400, {"message": message, **extra})


class Admin:
    def __init__(self, emu: SalesforceEmulator) -> None:
        self.emu = emu
        prefix = re.escape(ADMIN_PREFIX + "records/")
        self.dynamic: list[Dynamic] = [
            ("GET", re.compile(prefix + r"(?P<sobject>\w+)/?"), self.list_records),
            ("POST", re.compile(prefix + r"(?P<sobject>\w+)/?"), self.create_records),
            ("GET", re.compile(prefix + r"(?P<sobject>\w+)/(?P<id>[^/]+)/?"), self.get_record),
            ("PATCH", re.compile(prefix + r"(?P<sobject>\w+)/(?P<id>[^/]+)/?"),
             self.update_record),
            ("DELETE", re.compile(prefix + r"(?P<sobject>\w+)/(?P<id>[^/]+)/?"),
             self.delete_record),
        ]

    def dispatch_dynamic(self, request: Request) -> Response | None:
        for method, pattern, handler in self.dynamic:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                params = match.groupdict()

                def bound(r: Request, h: Any = handler, p: dict[str, str] = params) -> Response:
                    result: Response = h(r, p)
                    return result
                return self._guard(bound, request)
        return None

    def _guard(self, handler: Callable[[Request], Response], request: Request) -> Response:
        with self.emu.lock:
            try:
                return handler(request)
            except SFError as exc:
                return exc.response()
            except FixtureError as exc:
                return _bad(str(exc), **exc.detail)

    def route(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        return lambda request: self._guard(handler, request)

    def _table(self, name: str) -> Table:
        table = self.emu.store.table(name)
        if table is None:
            raise SFError.one(404, "NOT_FOUND", f"unknown sObject type {name!r}")
        return table

    # -- data ----------------------------------------------------------------------------
    def seed(self, request: Request) -> Response:
        """{"generate": {"deals": N, "seed": S, ...}} or {"records": {"User": [...], ...}}."""
        body = _json(request)
        if isinstance(body.get("generate"), dict):
            return Response.json(200, seed_generated(self.emu, body["generate"]))
        if isinstance(body.get("records"), dict):
            return Response.json(200, seed_records(self.emu, body["records"]))
        return _bad('body needs {"generate": {...}} or {"records": {...}}')

    def _dump(self, table: Table, request: Request) -> Response:
        include_deleted = (request.param("include_deleted") or "true").lower() != "false"
        records = [record_json(table, i, VERSION) for i, row in table.rows.items()
                   if include_deleted or not table.is_deleted(row)]
        return Response.json(200, {"totalSize": len(records), "records": records})

    def tasks(self, request: Request) -> Response:
        return self._dump(self.emu.store["Task"], request)

    def list_records(self, request: Request, params: dict[str, str]) -> Response:
        return self._dump(self._table(params["sobject"]), request)

    def get_record(self, request: Request, params: dict[str, str]) -> Response:
        table = self._table(params["sobject"])
        record_id, _ = self.emu.dml.find(table, unquote(params["id"]), allow_deleted=True)
        return Response.json(200, record_json(table, record_id, VERSION))

    def create_records(self, request: Request, params: dict[str, str]) -> Response:
        """One record (a JSON object) or several (a list); all or nothing."""
        body = _json(request)
        many = isinstance(body, list)
        result = seed_records(self.emu, {params["sobject"]: body if many else [body]})
        ids: list[str] = next(iter(result["ids"].values()), [])
        return Response.json(201, {"ids": ids} if many else {"id": ids[0]})

    def update_record(self, request: Request, params: dict[str, str]) -> Response:
        table = self._table(params["sobject"])
        body = _json(request)
        if not isinstance(body, dict):
            return _bad("body must be a JSON object of fields")
        record_id = self.emu.dml.update(table, unquote(params["id"]), body,
                                        self.emu.default_user_id, admin=True)
        return Response.json(200, record_json(table, record_id, VERSION))

    def delete_record(self, request: Request, params: dict[str, str]) -> Response:
        table = self._table(params["sobject"])
        record_id = self.emu.dml.delete(table, unquote(params["id"]), self.emu.default_user_id,
                                        admin=True)
        return Response.json(200, {"id": record_id, "deleted": True})

    # -- org settings --------------------------------------------------------------------
    def limits_get(self, request: Request) -> Response:
        return Response.json(200, {"daily_api_requests": self.emu.api_max,
                                   "used": self.emu.api_used})

    def limits_set(self, request: Request) -> Response:
        """{"daily_api_requests": M, "used": N} (either may be left out)."""
        body = _json(request)
        if "daily_api_requests" in body:
            self.emu.api_max = int(body["daily_api_requests"])
        if "used" in body:
            self.emu.api_used = int(body["used"])
        return self.limits_get(request)

    def expire_sessions(self, request: Request) -> Response:
        """{} expires every session; {"username": u} only that user's; {"and_next": n} also
        revokes the next n sessions as soon as they are issued."""
        body = _json(request)
        self.emu.auth.doomed = int(body.get("and_next", 0))
        return Response.json(200, {"expired": self.emu.auth.expire(body.get("username"))})

    def users(self, request: Request) -> Response:
        """{"username", "password", "security_token", "first_name"?, "last_name"?, "email"?,
        "is_active"?, "fields"? (more User fields)}: a User that can log in."""
        body = _json(request)
        if not body.get("username") or not body.get("password"):
            return _bad("username and password are required")
        fields = {"FirstName": body.get("first_name"), "LastName": body.get("last_name"),
                  "Email": body.get("email"), "IsActive": body.get("is_active")}
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.update(body.get("fields") or {})
        user_id = self.emu.add_login_user(str(body["username"]), str(body["password"]),
                                          str(body.get("security_token", "")), fields)
        return Response.json(201, {"id": user_id, "username": body["username"]})

    def apps(self, request: Request) -> Response:
        """{"consumer_key", "consumer_secret", "certificate"? (PEM; or "jwt_public_key"),
        "preauthorized"? [usernames], "run_as"? username}: a connected app (replaced if the
        key exists). Only pre-authorised users get JWT tokens; without run_as the client
        credentials flow is off."""
        body = _json(request)
        if not body.get("consumer_key"):
            return _bad("consumer_key is required")
        app = ConnectedApp(str(body["consumer_key"]), str(body.get("consumer_secret", "")),
                           body.get("certificate") or body.get("jwt_public_key"),
                           frozenset(str(u).lower() for u in body.get("preauthorized") or ()),
                           body.get("run_as"))
        self.emu.auth.apps[app.consumer_key] = app
        return Response.json(201, {"consumer_key": app.consumer_key})

    def locks(self, request: Request) -> Response:
        """{"ids": [...], "next": N, "rate": 0.1} or {"clear": true}: UNABLE_TO_LOCK_ROW."""
        body = _json(request)
        locks = self.emu.locks
        if body.get("clear"):
            locks.clear()
        locks.ids.update(str(i) for i in body.get("ids", ()))
        locks.fail_next = int(body.get("next", locks.fail_next))
        locks.rate = float(body.get("rate", locks.rate))
        return Response.json(200, {"ids": sorted(locks.ids), "next": locks.fail_next,
                                   "rate": locks.rate})

    def options(self, request: Request) -> Response:
        from sandbox.salesforce.emulator import RUNTIME_OPTIONS

        body = _json(request)
        unknown = set(body) - set(RUNTIME_OPTIONS)
        if unknown:
            return _bad(f"options that can change at run time: {list(RUNTIME_OPTIONS)}",
                        unknown=sorted(unknown))
        emu = self.emu
        for key, value in body.items():
            setattr(emu.options, key, value)
        emu.auth.ttl_seconds = emu.options.session_ttl_seconds
        emu.cursors.max_per_user = emu.options.max_cursors_per_user
        emu.cursors.ttl = timedelta(seconds=emu.options.cursor_ttl_seconds)
        emu.api_max = emu.options.daily_api_requests if "daily_api_requests" in body \
            else emu.api_max
        return Response.json(200, {k: getattr(emu.options, k) for k in RUNTIME_OPTIONS})

    def picklists(self, request: Request) -> Response:
        """{"TaskStatus": [...], "TaskPriority": [...]} (either may be left out): the org's
        own task status / priority values (see SalesforceEmulator.set_task_values)."""
        body = _json(request)
        if not isinstance(body, dict) or not body:
            return _bad('body needs {"TaskStatus": [...]} and/or {"TaskPriority": [...]}')
        from sandbox.salesforce.emulator import check_task_values

        try:
            for name, values in body.items():  # every list checked before any is applied
                check_task_values(name, values)
            out = {name: self.emu.set_task_values(name, values) for name, values in body.items()}
        except ValueError as exc:
            return _bad(str(exc))
        return Response.json(200, out)

    def log_activity(self, request: Request) -> Response:
        body = _json(request)
        at = parse_datetime(str(body["at"])) if body.get("at") else self.emu.now()
        if at is None or not isinstance(body.get("kind"), str):
            return _bad('body needs "kind" (call, email, task, meeting) and an ISO "at"')
        sobject, record = rep_record(body["kind"], at, what=body.get("what"),
                                     who=body.get("who"), owner=body.get("owner"),
                                     subject=body.get("subject"))
        record_id = self.emu.dml.create(self.emu.store[sobject], record,
                                        self.emu.default_user_id, admin=True)
        return Response.json(201, {"id": record_id, "sobject": sobject})

    def complete_task(self, request: Request) -> Response:
        body = _json(request)
        if not isinstance(body.get("id"), str):
            return _bad('body needs the Task "id"')
        at = parse_datetime(str(body["at"])) if body.get("at") else self.emu.now()
        if at is None:
            return _bad(f'"at" is not an ISO date-time: {body["at"]!r}')
        table = self.emu.store["Task"]
        record_id = self.emu.dml.update(table, body["id"], {
            "Status": picklist_closed(self.emu.store), "CompletedDateTime": at.isoformat()},
            self.emu.default_user_id, admin=True)
        return Response.json(200, record_json(table, record_id, VERSION))

    def cursors(self, request: Request) -> Response:
        return Response.json(200, {"open": self.emu.cursors.count()})

    def bulk_get(self, request: Request) -> Response:
        return Response.json(200, self.emu.bulk.summary())

    def bulk_set(self, request: Request) -> Response:
        body = _json(request)
        state = self.emu.bulk
        unknown = set(body) - {"deny", "allow", "fail_next", "error"}
        if unknown:
            return _bad('bulk takes "deny", "allow", "fail_next" and "error"',
                        unknown=sorted(unknown))
        state.denied.update(str(u).lower() for u in body.get("deny") or ())
        state.denied.difference_update(str(u).lower() for u in body.get("allow") or ())
        if "fail_next" in body:
            state.fail_next = int(body["fail_next"])
        if body.get("error"):
            state.fail_message = str(body["error"])
        return Response.json(200, state.summary())


def picklist_closed(store: Any) -> str:
    """The org's closed task status (the first closed TaskStatus row by sort order)."""
    table = store["TaskStatus"]
    rows = sorted((r for r in table.rows.values() if r[table.slot("IsClosed")]),
                  key=lambda r: r[table.slot("SortOrder")] or 0)
    if not rows:
        raise SFError.one(400, "NO_CLOSED_STATUS", "the org has no closed TaskStatus")
    row = rows[0]
    return str(row[table.slot("ApiName")] or row[table.slot("MasterLabel")])


def register_admin_routes(emu: SalesforceEmulator) -> Admin:
    admin = Admin(emu)
    r = admin.route
    add = emu.add_admin_route
    add("POST", "seed", r(admin.seed))
    add("GET", "tasks", r(admin.tasks))
    add("GET", "limits", r(admin.limits_get))
    add("POST", "limits", r(admin.limits_set))
    add("POST", "sessions/expire", r(admin.expire_sessions))
    add("POST", "users", r(admin.users))
    add("POST", "oauth/apps", r(admin.apps))
    add("POST", "locks", r(admin.locks))
    add("POST", "options", r(admin.options))
    add("GET", "cursors", r(admin.cursors))
    add("GET", "bulk", r(admin.bulk_get))
    add("POST", "bulk", r(admin.bulk_set))
    add("POST", "picklists", r(admin.picklists))
    add("POST", "activities", r(admin.log_activity))
    add("POST", "activities/complete", r(admin.complete_task))
    from sandbox.salesforce.prospects import register_prospects  # (imports this module)

    register_prospects(emu, r)
    return admin
