"""`HubSpotEmulator`: the HubSpot CRM API on top of `sandbox.core.Emulator`.

Every public route goes through `api()`: bearer authentication, then the rate limits, then
the handler (under the emulator lock for store access). Admin routes (`admin.py`) skip all
three and are never counted.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.core import Emulator
from sandbox.hubspot import admin, routes_crm, routes_objects
from sandbox.hubspot.auth import SANDBOX_TOKEN, Auth
from sandbox.hubspot.errors import PropertyProblems, correlation_id, error, rate_limit_body
from sandbox.hubspot.ratelimit import Limits, RateLimiter, portal_of
from sandbox.hubspot.schema import object_type
from sandbox.hubspot.search import SearchEngine
from sandbox.hubspot.seeding import seed_generated
from sandbox.hubspot.store import Store
from sandbox.messages import Handler, Request, Response
from sandbox.server import EmulatorServer

_OBJECT_PATH = re.compile(r"/crm/v3/objects/([^/]+)(?:/.*)?")
_SERVER_ERRORS = {500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
                  504: "GATEWAY_TIMEOUT"}


@dataclass
class HubSpotOptions:
    """Constructor options of `HubSpotEmulator` (unknown names raise TypeError)."""

    # The accepted static (private app) tokens; any other bearer is 401, as on HubSpot.
    tokens: list[str] = field(default_factory=lambda: [SANDBOX_TOKEN])
    token_ttl_seconds: float = 1800.0  # OAuth access token life, on the emulator clock
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 (a sandbox default)
    refresh_tokens: list[str] = field(default_factory=lambda: ["sandbox-refresh-token"])
    auth_codes: list[str] = field(default_factory=lambda: ["sandbox-auth-code"])
    burst: int = 100  # calls per rolling 10 s per principal
    burst_window_seconds: float = 10.0
    search_per_second: int = 5  # search calls per second per principal
    daily: int = 250_000  # calls per day per private-app principal
    retry_after: float | None = None  # Retry-After seconds on real 429s (None: no header)
    search_lag_seconds: float = 0.0  # writes reach search after this long
    batch_conflicts: str = "partial"  # unique conflicts in a batch: "partial" (207) | "whole" (409)
    task_key_property: str = "winback_key"  # the task property the write log files writes under
    deals: int = 0  # generate this many deals at start (sandbox.seed.generate, seed=seed)

    def limits(self) -> Limits:
        return Limits(self.burst, self.burst_window_seconds, self.search_per_second,
                      self.daily, self.retry_after)


class HubSpotEmulator(Emulator):
    name = "hubspot"

    def __init__(self, seed: int = 0, **options: Any) -> None:
        super().__init__(seed=seed)
        self.seed = seed
        self.options = HubSpotOptions(**options)
        if self.options.batch_conflicts not in ("partial", "whole"):
            raise ValueError("batch_conflicts must be 'partial' or 'whole'")
        opts = self.options
        self.auth = Auth(tokens=opts.tokens, client_id=opts.client_id,
                         client_secret=opts.client_secret, refresh_tokens=opts.refresh_tokens,
                         auth_codes=opts.auth_codes, ttl_seconds=opts.token_ttl_seconds)
        self.limits = opts.limits()
        self.limiter = RateLimiter(self.limits)
        self.batch_conflicts = opts.batch_conflicts
        self.store = Store(lag_seconds=opts.search_lag_seconds)
        self.engine = SearchEngine()
        # The query strings received, by endpoint (the last 200 each): what a client sent.
        self.queries: dict[str, deque[dict[str, list[str]]]] = {}

        routes_objects.register(self)
        routes_crm.register(self)
        admin.register(self)
        self.add_admin_route("POST", "tokens/register", self._admin_register_tokens)
        if opts.deals:
            with self.lock:
                seed_generated(self, {"deals": opts.deals, "seed": seed})

    # -- request pipeline ---------------------------------------------------------------
    def api(self, handler: Handler, *, search: bool = False, auth: bool = True) -> Handler:
        """Wrap a public handler with authentication and rate limiting."""

        def run(request: Request) -> Response:
            with self.lock:
                self.queries.setdefault(request.endpoint, deque(maxlen=200)).append(
                    {k: list(v) for k, v in request.query.items()})
            if auth:
                caller = self.auth.authenticate(request.header("Authorization"), self.now())
                today = self.now().date()
                policy = self.limiter.admit(caller.principal, search=search,
                                            daily=not caller.oauth, today=today)
                if policy is not None:
                    headers = {} if search else self.limiter.headers(
                        caller.principal, daily=not caller.oauth, today=today)
                    return self.limiter.rejection(caller.principal, policy, headers)
            try:
                return handler(request)
            except PropertyProblems as exc:
                return exc.response()

        return run

    # -- core hooks ---------------------------------------------------------------------
    def principal(self, request: Request) -> str:
        return self.auth.principal(request.header("Authorization"))

    def decorate(self, request: Request, response: Response) -> Response:
        if response.drop:
            return response
        response.headers.setdefault("X-HubSpot-Correlation-Id", correlation_id())
        principal = self.principal(request)
        if (response.status in (401, 429) or principal == "anonymous"
                or request.endpoint.endswith(".search") or request.endpoint.startswith("oauth")):
            return response
        oauth = principal.startswith("oauth:")
        for name, value in self.limiter.headers(principal, daily=not oauth,
                                                today=self.now().date()).items():
            response.headers.setdefault(name, value)
        return response

    def error_response(self, request: Request, status: int) -> Response:
        category = _SERVER_ERRORS.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        return error(status, category, "internal error" if status >= 500 else "injected error")

    def rate_limited_response(self, request: Request, retry_after: float | None) -> Response:
        principal = self.principal(request)
        policy = "SECONDLY" if request.endpoint.endswith(".search") else "TEN_SECONDLY_ROLLING"
        portal = portal_of(principal)
        group = (f"publicapi:crm-search-api-calls-secondly:{portal}" if policy == "SECONDLY"
                 else f"publicapi:private-app-api-calls-ten-secondly:{portal}")
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = (str(int(retry_after)) if float(retry_after).is_integer()
                                      else f"{retry_after:g}")
        return Response.json(429, rate_limit_body(policy, group), headers)

    def _admin_register_tokens(self, request: Request) -> Response:
        """Body {"tokens": ["pat-…", …]}: accept these static tokens too (kept across resets,
        like the constructor's `tokens`)."""
        data = request.json()
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            return Response.json(400, {"message": 'POST /__sandbox/tokens/register needs a body '
                                       '{"tokens": ["pat-…", …]}: a list of non-empty strings'})
        return Response.json(200, {"ok": True, "static_tokens": self.auth.register(tokens)})

    def not_found(self, request: Request) -> Response:
        match = _OBJECT_PATH.fullmatch(request.path)
        if match and object_type(match.group(1)) is None:
            return error(400, "VALIDATION_ERROR",
                         f"Unable to infer object type from: {match.group(1)}")
        return error(404, "OBJECT_NOT_FOUND", f"No route for {request.method} {request.path}")

    def reset_data(self) -> None:
        """Back to an empty portal with this emulator's constructor options."""
        opts = self.options
        self.store = Store(lag_seconds=opts.search_lag_seconds)
        self.engine = SearchEngine()
        self.limits.__dict__.update(asdict(opts.limits()))
        self.limiter.reset()
        self.batch_conflicts = opts.batch_conflicts
        self.auth.ttl_seconds = opts.token_ttl_seconds
        self.auth.doomed = 0
        self.queries.clear()


def start_hubspot(port: int = 0, *, seed: int = 0,
                  **options: Any) -> tuple[EmulatorServer, HubSpotEmulator]:
    """Serve a new HubSpot emulator over plain HTTP on 127.0.0.1 (port 0: a free one)."""
    emulator = HubSpotEmulator(seed=seed, **options)
    server = EmulatorServer(emulator, port).start()
    return server, emulator
