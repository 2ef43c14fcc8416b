"""The Salesforce emulator: org state, the core hooks in Salesforce's shapes, and startup.

State lives in one `Store` (records), `Auth` (logins, sessions, connected apps), `Cursors`
(open query locators), `BulkState` (Bulk API 2.0 query jobs) and the daily API budget;
every handler touches them under `self.lock`. Routes are in `api.py` / `collections.py` /
`bulk.py`, the admin API in `admin.py`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sandbox.core import ADMIN_PREFIX, Emulator
from sandbox.messages import Request, Response
from sandbox.salesforce.admin import register_admin_routes
from sandbox.salesforce.api import register_api_routes
from sandbox.salesforce.auth import Auth, ConnectedApp, Credential, oauth_error, soap_fault
from sandbox.salesforce.auth import soap_username as _soap_username
from sandbox.salesforce.bulk import BulkState
from sandbox.salesforce.cursors import Cursors
from sandbox.salesforce.dml import Dml, Locks
from sandbox.salesforce.errors import NOT_FOUND_MESSAGE, error_response
from sandbox.salesforce.ids import checksum
from sandbox.salesforce.schema import STANDARD_STAGES, TASK_PRIORITIES, TASK_STATUSES, build_schema
from sandbox.salesforce.seeding import seed_generated
from sandbox.salesforce.store import Store
from sandbox.server import EmulatorServer
from sandbox.tls import TestCA, make_ca

LOGIN_ENDPOINTS = frozenset({"soap_login", "oauth_token"})
UNMETERED = LOGIN_ENDPOINTS | {"versions"}


@dataclass
class SalesforceOptions:
    """Constructor options of `SalesforceEmulator` (all keyword arguments)."""

    task_external_id_field: str | None = "Winback_Key__c"  # None: the org has no such field
    task_external_id_unique: bool = True
    daily_api_requests: int = 100_000
    session_ttl_seconds: float | None = 7200.0  # idle time, by the emulator clock
    max_cursors_per_user: int = 10
    cursor_ttl_seconds: float = 900.0
    instance_url: str | None = None  # default: the server's own URL
    username: str = "winback@sandbox.example"
    # Well-known sandbox credentials, not secrets: any test may log in with them.
    password: str = "sandbox-password"  # noqa: S105
    security_token: str = "SANDBOXTOKEN"  # noqa: S105
    consumer_key: str = "sandbox-client-id"
    consumer_secret: str = "sandbox-client-secret"  # noqa: S105
    jwt_public_key: str | None = None  # PEM certificate (or public key) of consumer_key: jwt
    retry_after_on_503: float | None = None  # injected 503s carry Retry-After (SF sends none)
    deals: int = 0  # seed this many generated deals at start (sandbox.seed.generate)
    bulk_job_polls: int = 0  # state reads a Bulk 2.0 query job answers InProgress (bulk.py)
    org_id: str = "00DWb0000000001"  # 15 characters: several orgs (sandbox/tenants.py) differ


RUNTIME_OPTIONS = ("session_ttl_seconds", "max_cursors_per_user", "cursor_ttl_seconds",
                   "retry_after_on_503", "daily_api_requests", "bulk_job_polls")


def check_task_values(table_name: str, values: Any) -> str:
    """The flag field of a valid TaskStatus / TaskPriority value list; ValueError otherwise."""
    flag = {"TaskStatus": "IsClosed", "TaskPriority": "IsHighPriority"}.get(table_name)
    if flag is None:
        raise ValueError(f"{table_name!r}: only TaskStatus and TaskPriority take values")
    if not isinstance(values, list) or not values or not all(
            isinstance(v, dict) and v.get("value") for v in values):
        raise ValueError(f"{table_name}: a non-empty list of {{\"value\": ...}} objects")
    if sum(bool(v.get("default")) for v in values) != 1:
        raise ValueError(f"{table_name}: exactly one value needs \"default\": true")
    return flag


class SalesforceEmulator(Emulator):
    name = "salesforce"

    def __init__(self, seed: int = 0, **options: Any) -> None:
        known = {f.name for f in fields(SalesforceOptions)}
        unknown = set(options) - known
        if unknown:
            raise TypeError(f"unknown Salesforce emulator options: {sorted(unknown)}")
        self.options = SalesforceOptions(**options)
        self._initial_options = replace(self.options)
        self.seed = seed
        super().__init__(seed=seed)
        self.org_id = self.options.org_id[:15] + checksum(self.options.org_id[:15])
        self.schema = build_schema(self.options.task_external_id_field,
                                   self.options.task_external_id_unique)
        self.instance_url = self.options.instance_url
        self.api_max = self.options.daily_api_requests
        self.api_used = 0
        self.locks = Locks(self.rng)
        self.auth = Auth(self.org_id, self.options.session_ttl_seconds)
        self.cursors = Cursors(self.options.max_cursors_per_user, self.options.cursor_ttl_seconds)
        self.bulk = BulkState()
        self.store = Store(self.schema)
        self.dml = Dml(self.store, self.now, self.locks, self.writes)
        self.default_user_id = ""
        self.system_user_id = ""
        register_api_routes(self)
        self.admin = register_admin_routes(self)
        with self.lock:
            self.reset_data()
            if self.options.deals:
                seed_generated(self, {"deals": self.options.deals, "seed": seed})

    # -- state ---------------------------------------------------------------------------
    def reset_data(self) -> None:
        """Back to the org as constructed: data, logins, sessions, cursors, locks, budget and
        run-time options (no generated deals)."""
        self.options = replace(self._initial_options)
        self.auth.ttl_seconds = self.options.session_ttl_seconds
        self.cursors.max_per_user = self.options.max_cursors_per_user
        self.cursors.ttl = timedelta(seconds=self.options.cursor_ttl_seconds)
        self.store = Store(self.schema)
        self.dml = Dml(self.store, self.now, self.locks, self.writes)
        self.auth.clear()
        self.cursors.clear()
        self.bulk.clear()
        self.locks.clear()
        self.api_used = 0
        self.api_max = self.options.daily_api_requests
        # The sandbox app: its certificate (if given) for jwt, the integration user
        # pre-authorised (a permission set) and the client credentials flow's Run As user.
        self.auth.apps[self.options.consumer_key] = ConnectedApp(
            self.options.consumer_key, self.options.consumer_secret, self.options.jwt_public_key,
            frozenset({self.options.username.lower()}), self.options.username)
        self._load_picklists()
        self.default_user_id = ""
        self.default_user_id = self.add_login_user(
            self.options.username, self.options.password, self.options.security_token,
            {"FirstName": "Winback", "LastName": "Integration", "Email": self.options.username,
             "Alias": "winback", "TimeZoneSidKey": "GMT", "CountryCode": "US"})

    def _load_picklists(self) -> None:
        system = self.system_user_id = self.store.ids.new("005")  # "Automated Process" user
        for stage in STANDARD_STAGES:
            self.dml.create(self.store["OpportunityStage"], {
                "MasterLabel": stage.label, "ApiName": stage.label, "IsActive": stage.active,
                "IsClosed": stage.closed, "IsWon": stage.won,
                "DefaultProbability": stage.probability,
                "ForecastCategory": stage.forecast_category,
                "ForecastCategoryName": stage.forecast_name, "SortOrder": stage.sort,
            }, system, admin=True)
        for i, (label, closed, default) in enumerate(TASK_STATUSES, 1):
            self.dml.create(self.store["TaskStatus"], {
                "MasterLabel": label, "ApiName": label, "IsClosed": closed,
                "IsDefault": default, "SortOrder": i}, system, admin=True)
        for i, (label, high, default) in enumerate(TASK_PRIORITIES, 1):
            self.dml.create(self.store["TaskPriority"], {
                "MasterLabel": label, "ApiName": label, "IsHighPriority": high,
                "IsDefault": default, "SortOrder": i}, system, admin=True)

    def set_task_values(self, table_name: str, values: list[dict[str, Any]]) -> list[str]:
        """Replace the org's TaskStatus or TaskPriority values (caller holds the lock).
        Each value: {"value": api name, "label"?: master label, "default"?: bool, and
        "closed"?: bool (TaskStatus) or "high"?: bool (TaskPriority)}; exactly one default,
        as Salesforce's picklist set-up requires."""
        flag = check_task_values(table_name, values)
        key = "closed" if flag == "IsClosed" else "high"
        table = self.store[table_name]
        table.rows.clear()
        for i, value in enumerate(values, 1):
            self.dml.create(table, {
                "ApiName": str(value["value"]), "MasterLabel": str(value.get("label")
                                                                   or value["value"]),
                flag: bool(value.get(key)), "IsDefault": bool(value.get("default")),
                "SortOrder": int(value.get("sort_order", i))}, self.system_user_id, admin=True)
        return [str(v["value"]) for v in values]

    def add_login_user(self, username: str, password: str, security_token: str,
                       fields: dict[str, Any] | None = None) -> str:
        """Create (or reuse, by Username) a User and let it log in. Caller holds the lock."""
        users = self.store["User"]
        existing = next((i for i, r in users.rows.items()
                         if r[users.slot("Username")].lower() == username.lower()), None)
        data = {"Username": username, "LastName": username.split("@", maxsplit=1)[0],
                **(fields or {})}
        actor = self.default_user_id or self.system_user_id
        if existing is None:
            user_id = self.dml.create(users, data, actor, admin=True)
        else:
            user_id = self.dml.update(users, existing, data, actor, admin=True)
        self.auth.credentials[username.lower()] = Credential(username, password, security_token,
                                                            user_id)
        return user_id

    def user_active(self, user_id: str) -> bool:
        users = self.store["User"]
        row = users.rows.get(user_id)
        return row is not None and bool(row[users.slot("IsActive")])

    def consume_api_call(self) -> bool:
        """Count one REST call against the daily budget; False when it is spent."""
        if self.api_used >= self.api_max:
            return False
        self.api_used += 1
        return True

    def base_url(self, request: Request) -> str:
        if self.instance_url:
            return self.instance_url.rstrip("/")
        return f"https://{request.header('Host', '127.0.0.1')}"

    # -- core hooks ----------------------------------------------------------------------
    def principal(self, request: Request) -> str:
        """The logged-in username, so Retry-After and overlap checks are per login."""
        if request.endpoint == "soap_login":
            name = _soap_username(request.body)
        elif request.endpoint == "oauth_token":
            form = parse_qs(request.body.decode("utf-8", "replace"))
            name = form["username"][0] if form.get("username") else None
        else:
            with self.lock:
                session = self.auth.session_for(request.header("Authorization"))
            name = session.username if session else None
        return name or "anonymous"

    def decorate(self, request: Request, response: Response) -> Response:
        if request.endpoint not in UNMETERED:
            with self.lock:
                response.headers["Sforce-Limit-Info"] = f"api-usage={self.api_used}/{self.api_max}"
        return response

    def error_response(self, request: Request, status: int) -> Response:
        if request.endpoint == "soap_login":
            return soap_fault("UNKNOWN_EXCEPTION", "An unexpected error occurred.", status)
        if request.endpoint == "oauth_token":
            return oauth_error("unknown_error", "retry your request", status)
        if status == 503:
            response = error_response(503, "SERVER_UNAVAILABLE",
                                      "Server temporarily unavailable, please try again later.")
            if self.options.retry_after_on_503 is not None:
                seconds = self.options.retry_after_on_503
                response.headers["Retry-After"] = (str(int(seconds)) if float(seconds).is_integer()
                                                   else f"{seconds:g}")
            return response
        return error_response(status, "UNKNOWN_EXCEPTION",
                              "An unexpected error occurred. Please include this ErrorId if you "
                              "contact support: 1234567890-12345 (-1234567890)")

    def rate_limited_response(self, request: Request, retry_after: float | None) -> Response:
        # Salesforce has no 429: concurrency throttling is a 403 REQUEST_LIMIT_EXCEEDED with
        # this message and no Retry-After (reference §4), so an injected rate_429 answers that.
        return error_response(403, "REQUEST_LIMIT_EXCEEDED",
                              "ConcurrentRequests (Concurrent API Requests) Limit exceeded.")

    def not_found(self, request: Request) -> Response:
        return error_response(404, "NOT_FOUND", NOT_FOUND_MESSAGE)

    def handle(self, request: Request) -> Response:
        if request.path.startswith(ADMIN_PREFIX):
            dynamic = self.admin.dispatch_dynamic(request)
            if dynamic is not None:
                return dynamic
        response = super().handle(request)
        if response.status == 405 and not request.path.startswith(ADMIN_PREFIX):
            return error_response(405, "METHOD_NOT_ALLOWED",
                                  f"HTTP Method '{request.method}' not allowed.")
        return response


def start_salesforce(port: int = 0, *, ca_dir: Path | None = None, seed: int = 0,
                     **options: Any) -> tuple[EmulatorServer, TestCA, SalesforceEmulator]:
    """Serve a fresh emulator over HTTPS on 127.0.0.1; the CA's PEM is written to `ca_dir`."""
    ca = make_ca(ca_dir or Path(tempfile.mkdtemp(prefix="winback-sf-ca-")))
    emulator = SalesforceEmulator(seed=seed, **options)
    server = EmulatorServer(emulator, port, ssl_context=ca.server_context).start()
    if emulator.instance_url is None:
        emulator.instance_url = server.url
    return server, ca, emulator
