"""The HTTP machinery shared by the CRM emulators: routing, faults, latency, call counts, clock.

An `Emulator` owns a CRM's in-memory state and its routes; an `EmulatorServer`
(sandbox/server.py) serves one emulator over real HTTP(S) on 127.0.0.1 from a thread pool.
Everything a test or benchmark needs to steer a scenario goes through the admin routes under
`/__sandbox/`, registered here for every emulator (calls, requests, faults, latency, clock,
violations, writes, reset) and by each emulator for its own data (seed, tasks, limits).

Faults and latency never touch admin routes, and admin calls are never counted. `add_hook`:
code that follows the admin clock or reset (the prospect simulator, sandbox/prospects.py).
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from sandbox.messages import Handler, HttpError, Request, Response, Route
from sandbox.writelog import WRITE_OUTCOMES, WriteLog

ADMIN_PREFIX = "/__sandbox/"
_STATUSES = {s.value for s in HTTPStatus}
RUN_HEADER = "X-Winback-Run"


@dataclass
class FaultRule:
    """What can go wrong on one endpoint ("*" = every endpoint without its own rule)."""

    error_rate: float = 0.0  # answer `error_status` instead of the real reply
    error_status: int = 503
    rate_429: float = 0.0  # answer 429 with Retry-After
    retry_after: float | None = 1.0
    slow_rate: float = 0.0  # sleep `slow_seconds` before answering (to pass a client timeout)
    slow_seconds: float = 5.0
    drop_rate: float = 0.0  # close the connection without an answer
    latency_ms: float = 0.0  # added to every answer
    jitter_ms: float = 0.0
    count: int | None = None  # the rule acts on this many more requests, then is removed

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known - {"endpoint"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Violation:
    kind: str
    principal: str
    endpoint: str
    detail: str
    at: str


class Emulator:
    """Base of a CRM emulator: subclasses add routes and state; handlers run on many threads."""

    name = "emulator"

    def __init__(self, *, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._routes: list[Route] = []
        self._admin: list[Route] = []
        self._calls: Counter[str] = Counter()
        self._requests: list[dict[str, Any]] = []  # every API request as it arrived
        self._faults: dict[str, FaultRule] = {}
        self._clock_offset = timedelta(0)
        self._retry_deadline: dict[str, tuple[float, str]] = {}
        self._runs: dict[str, dict[str, list[float]]] = {}
        self._violations: list[Violation] = []
        self._stats_lock = threading.Lock()
        self.writes = WriteLog()
        self._hooks: dict[str, list[Callable[[], None]]] = {"clock": [], "reset": []}
        self._register_admin_routes()

    # -- routing -------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, endpoint: str, handler: Handler) -> None:
        """Register `handler` for `method` and a full-match regex `pattern` (named groups
        become `request.path_params`). `endpoint` names the route in call counts and faults."""
        self._routes.append(Route(method.upper(), re.compile(pattern), endpoint, handler))

    def add_admin_route(self, method: str, path: str, handler: Handler) -> None:
        """Register an admin route at `/__sandbox/<path>` (a literal path)."""
        pattern = re.compile(re.escape(ADMIN_PREFIX + path.lstrip("/")) + "/?")
        self._admin.append(Route(method.upper(), pattern, "admin", handler))

    def add_admin_pattern(self, method: str, pattern: str, handler: Handler) -> None:
        """Register an admin route whose path after `/__sandbox/` matches the regex `pattern`
        (named groups become `request.path_params`)."""
        compiled = re.compile(re.escape(ADMIN_PREFIX) + pattern.lstrip("/") + "/?")
        self._admin.append(Route(method.upper(), compiled, "admin", handler))

    def endpoints(self) -> list[str]:
        return sorted({r.endpoint for r in self._routes})

    # -- clock ---------------------------------------------------------------------------
    def now(self) -> datetime:
        """The emulator's clock: real UTC time plus the offset set through the admin API."""
        return datetime.now(UTC) + self._clock_offset

    # -- hooks for subclasses ------------------------------------------------------------
    def principal(self, request: Request) -> str:
        """Who is calling (one CRM org/portal login), for Retry-After and run-overlap checks."""
        return request.header("Authorization") or "anonymous"

    def reset_data(self) -> None:
        """Forget all CRM data (subclasses)."""

    def add_hook(self, event: str, hook: Callable[[], None]) -> None:
        """Call `hook` after every admin clock change ("clock") or admin reset ("reset")."""
        self._hooks[event].append(hook)

    def _fire(self, event: str) -> None:
        for hook in self._hooks[event]:
            hook()

    def not_found(self, request: Request) -> Response:
        return Response.json(404, {"message": f"no route for {request.method} {request.path}"})

    def decorate(self, request: Request, response: Response) -> Response:
        """Add CRM headers (limit info, rate-limit headers) to every non-admin answer."""
        return response

    def error_response(self, request: Request, status: int) -> Response:
        """The body of an injected server error, in the CRM's own shape."""
        return Response.json(status, {"message": "injected fault", "status": status})

    def rate_limited_response(self, request: Request, retry_after: float | None) -> Response:
        """An injected 429, in the CRM's own shape."""
        headers = {"Retry-After": _fmt_seconds(retry_after)} if retry_after is not None else {}
        return Response.json(429, {"message": "injected rate limit"}, headers)

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path.startswith(ADMIN_PREFIX):
            return self._dispatch(request, self._admin, admin=True)
        return self._dispatch(request, self._routes, admin=False)

    def _dispatch(self, request: Request, routes: Iterable[Route], *, admin: bool) -> Response:
        allowed: list[str] = []
        for route in routes:
            match = route.pattern.fullmatch(request.path)
            if not match:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            request.path_params = {k: v for k, v in match.groupdict().items() if v is not None}
            request.endpoint = route.endpoint
            if admin:
                return self._call(route.handler, request)
            return self._serve(route, request)
        if allowed:
            return Response.json(405, {"message": f"method {request.method} not allowed"})
        return self.not_found(request)

    def _call(self, handler: Handler, request: Request) -> Response:
        try:
            return handler(request)
        except HttpError as exc:
            return exc.response

    def _serve(self, route: Route, request: Request) -> Response:
        principal = self.principal(request)
        with self._stats_lock:
            self._calls[route.endpoint] += 1
            self._requests.append({"at": time.time(), "endpoint": route.endpoint,
                                   "run": request.header(RUN_HEADER)})
            self._check_retry_after(principal, route.endpoint)
            self._track_run(principal, request)
        rule = self._take_rule(route.endpoint)
        response: Response | None = None
        if rule is not None:
            response = self._inject(rule, request)
        if response is None:
            response = self._call(route.handler, request)
        response = self.decorate(request, response)
        self._remember_retry_after(principal, route.endpoint, response)
        return response

    def _take_rule(self, endpoint: str) -> FaultRule | None:
        """The fault rule for this request; a rule with a `count` is used up by requests."""
        with self._stats_lock:
            name = endpoint if endpoint in self._faults else "*"
            rule = self._faults.get(name)
            if rule is not None and rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    del self._faults[name]
            return rule

    def _inject(self, rule: FaultRule, request: Request) -> Response | None:
        with self._stats_lock:
            roll = self.rng.random()
            delay = rule.latency_ms + (self.rng.random() * rule.jitter_ms if rule.jitter_ms else 0)
        if delay:
            time.sleep(delay / 1000)
        edge = rule.drop_rate
        if roll < edge:
            return Response(0, drop=True)
        edge += rule.error_rate
        if roll < edge:
            return self.error_response(request, rule.error_status)
        edge += rule.rate_429
        if roll < edge:
            return self.rate_limited_response(request, rule.retry_after)
        edge += rule.slow_rate
        if roll < edge:
            time.sleep(rule.slow_seconds)
        return None

    # -- Retry-After and overlapping-run bookkeeping --------------------------------------
    def _remember_retry_after(self, principal: str, endpoint: str, response: Response) -> None:
        value = response.headers.get("Retry-After")
        if response.status not in (429, 503) or value is None:
            return
        try:
            seconds = float(value)
        except ValueError:
            return
        with self._stats_lock:
            self._retry_deadline[principal] = (time.monotonic() + seconds, endpoint)

    def _check_retry_after(self, principal: str, endpoint: str) -> None:
        deadline = self._retry_deadline.get(principal)
        if deadline is None:
            return
        early = deadline[0] - time.monotonic()
        if early > 0.05:  # 50 ms of slack for requests already on the wire
            self._violations.append(
                Violation(
                    "retry_after",
                    principal,
                    endpoint,
                    f"arrived {early * 1000:.0f} ms before the Retry-After given on {deadline[1]}",
                    self.now().isoformat(),
                )
            )
        else:
            del self._retry_deadline[principal]

    def _track_run(self, principal: str, request: Request) -> None:
        run = request.header(RUN_HEADER)
        if not run:
            return
        now = time.monotonic()
        span = self._runs.setdefault(principal, {}).setdefault(run, [now, now])
        span[1] = now

    def overlapping_runs(self) -> list[dict[str, Any]]:
        """Pairs of runs (X-Winback-Run values) of one principal whose request spans intersect."""
        found: list[dict[str, Any]] = []
        with self._stats_lock:
            runs = {p: dict(r) for p, r in self._runs.items()}
        for principal, spans in runs.items():
            ordered = sorted(spans.items(), key=lambda item: item[1][0])
            for (run_a, (_, end_a)), (run_b, (start_b, _)) in itertools.pairwise(ordered):
                if start_b < end_a:
                    found.append({"principal": principal, "runs": [run_a, run_b]})
        return found

    # -- admin API -----------------------------------------------------------------------
    def _register_admin_routes(self) -> None:
        self.add_admin_route("GET", "calls", self._admin_calls)
        self.add_admin_route("POST", "calls/reset", self._admin_calls_reset)
        self.add_admin_route("GET", "requests", self._admin_requests)
        self.add_admin_route("GET", "faults", self._admin_faults_get)
        self.add_admin_route("POST", "faults", self._admin_faults_set)
        self.add_admin_route("POST", "latency", self._admin_latency)
        self.add_admin_route("GET", "clock", self._admin_clock_get)
        self.add_admin_route("POST", "clock", self._admin_clock_set)
        self.add_admin_route("GET", "violations", self._admin_violations)
        self.add_admin_route("POST", "reset", self._admin_reset)
        self.add_admin_route("GET", "writes", self._admin_writes)
        self.add_admin_route("POST", "writes/reset", self._admin_writes_reset)
        self.add_admin_route("GET", "endpoints", lambda r: Response.json(200, self.endpoints()))

    def _admin_calls(self, request: Request) -> Response:
        with self._stats_lock:
            calls = dict(self._calls)
        return Response.json(200, {"calls": calls, "total": sum(calls.values())})

    def _admin_requests(self, request: Request) -> Response:
        """Every API request since the last reset, in arrival order: {"at": epoch seconds
        (wall clock, when it arrived), "endpoint", "run" (X-Winback-Run)}; no principal,
        which may be a token."""
        with self._stats_lock:
            requests = list(self._requests)
        return Response.json(200, {"requests": requests})

    def _admin_calls_reset(self, request: Request) -> Response:
        with self._stats_lock:
            self._calls.clear()
            self._requests.clear()
        return Response.json(200, {"ok": True})

    def _admin_writes(self, request: Request) -> Response:
        """{"keys": {task key: {"created": n, "resent": n, "updated": n, "refused": n}},
        "totals": {...}}: every task write request served, per record (see `WriteLog`)."""
        keys = self.writes.snapshot()
        totals = {o: sum(k[o] for k in keys.values()) for o in WRITE_OUTCOMES}
        return Response.json(200, {"keys": keys, "totals": totals})

    def _admin_writes_reset(self, request: Request) -> Response:
        self.writes.clear()
        return Response.json(200, {"ok": True})

    def _admin_faults_get(self, request: Request) -> Response:
        return Response.json(200, {k: v.__dict__ for k, v in self._faults.items()})

    def _admin_faults_set(self, request: Request) -> Response:
        """Body: {"endpoint": "*"|name, <FaultRule fields>} or {"clear": true}."""
        data = request.json() or {}
        if data.get("clear"):
            self._faults.clear()
            return Response.json(200, {"ok": True})
        endpoint = str(data.get("endpoint", "*"))
        if endpoint != "*" and endpoint not in self.endpoints():
            return Response.json(400, {"message": f"unknown endpoint {endpoint!r}",
                                       "endpoints": self.endpoints()})
        try:
            self._faults[endpoint] = FaultRule.from_json(data)
        except (TypeError, ValueError) as exc:
            return Response.json(400, {"message": str(exc)})
        return Response.json(200, {"ok": True})

    def _admin_latency(self, request: Request) -> Response:
        """Body: {"endpoint": "*"|name, "ms": 20, "jitter_ms": 10}; keeps other fault settings."""
        data = request.json() or {}
        endpoint = str(data.get("endpoint", "*"))
        rule = self._faults.get(endpoint) or FaultRule()
        rule.latency_ms = float(data.get("ms", 0))
        rule.jitter_ms = float(data.get("jitter_ms", 0))
        self._faults[endpoint] = rule
        return Response.json(200, {"ok": True})

    def _admin_clock_get(self, request: Request) -> Response:
        return Response.json(200, {"now": _iso(self.now()),
                                   "offset_seconds": self._clock_offset.total_seconds()})

    def _admin_clock_set(self, request: Request) -> Response:
        """Body: {"offset_seconds": N} or {"now": ISO-8601 with zone} or {"advance_seconds": N}."""
        data = request.json() or {}
        if "now" in data:
            target = datetime.fromisoformat(str(data["now"]).replace("Z", "+00:00"))
            if target.tzinfo is None:
                return Response.json(400, {"message": "now needs a time zone"})
            self._clock_offset = target - datetime.now(UTC)
        elif "advance_seconds" in data:
            self._clock_offset += timedelta(seconds=float(data["advance_seconds"]))
        else:
            self._clock_offset = timedelta(seconds=float(data.get("offset_seconds", 0)))
        self._fire("clock")  # (the prospect simulator catches up with the new time)
        return self._admin_clock_get(request)

    def _admin_violations(self, request: Request) -> Response:
        with self._stats_lock:
            items = [v.__dict__ for v in self._violations]
        overlaps = self.overlapping_runs()
        return Response.json(200, {"retry_after": items, "overlapping_runs": overlaps})

    def _admin_reset(self, request: Request) -> Response:
        """Forget data, counts, writes, faults, violations and the clock offset."""
        with self.lock:
            self.reset_data()
        with self._stats_lock:
            self._calls.clear()
            self._requests.clear()
            self._violations.clear()
            self._runs.clear()
            self._retry_deadline.clear()
        self.writes.clear()
        self._faults.clear()
        self._clock_offset = timedelta(0)
        self._fire("reset")
        return Response.json(200, {"ok": True})


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fmt_seconds(value: float) -> str:
    # Whole seconds, rounded up: HTTP allows only delta-seconds, and urllib3 rejects "0.5".
    return str(math.ceil(value))
