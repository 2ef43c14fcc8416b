"""Every HTTP call of the adapter goes through `Transport.call`: the budget guard, the client
rate limiter, the bearer token, the timeout, one tenacity retry policy, error typing, the
`crm.call` log event and a `CallRecord` for the observer.

The real `hubspot-api-client` does the HTTP (reference §6): one keyword, `host=`, reaches every
API; `ssl_ca_cert=` trusts a private CA; each discovery property builds a new ApiClient and
connection pool, so the API objects are built once and cached. urllib3's own retries are off
(`retry=False`): they skip POSTs, and a blind retry of a create can duplicate a task, so
retries live here, where the caller decides whether a request that may have been applied can
be repeated. The `*_with_http_info` variants return the response headers, which carry the
daily budget.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
import urllib3.exceptions
from hubspot import HubSpot
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from connectors.base import MAX_REAUTH, CallObserver, CallRecord, HubSpotSettings
from connectors.errors import AuthError, ConnectorError
from connectors.hubspot.auth import Grant, TokenSource
from connectors.hubspot.failures import (
    Rejected,
    TransientError,
    from_api_exception,
    from_transport_error,
    is_api_exception,
)
from connectors.hubspot.limits import DailyBudget, Limiter

log = structlog.get_logger("connectors.hubspot")

CRM = "hubspot"
RUN_HEADER = "X-Winback-Run"
CONNECT_TIMEOUT = 10.0
MAX_ATTEMPTS = 10
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is clamped (and usually exceeds retry_budget)
_backoff = wait_random_exponential(multiplier=0.5, max=10)  # full jitter


class Transport:
    def __init__(self, settings: HubSpotSettings, observer: CallObserver | None = None, *,
                 retry_budget: float = 20.0) -> None:
        self.settings = settings
        self.retry_budget = retry_budget  # seconds one call may spend retrying
        self.name = settings.name
        self._observer = observer
        config: dict[str, Any] = {"host": settings.base_url.rstrip("/"), "retry": False,
                                  "access_token": settings.auth.access_token}
        if settings.ca_bundle:
            config["ssl_ca_cert"] = settings.ca_bundle
        self._client = HubSpot(**config)
        self._apis: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._timeout = (min(CONNECT_TIMEOUT, settings.timeout), settings.timeout)
        self.limiter = Limiter(settings.burst_limit, settings.search_per_second)
        self.budget = DailyBudget(settings.api_budget_share)
        self.tokens = TokenSource(settings, self._fetch_token)
        self.run_id: str | None = None
        self.guard: Callable[[], None] | None = None  # before every call (Connector.begin_run)
        self.calls_made = 0

    # -- SDK objects -------------------------------------------------------------------
    def api(self, path: str) -> Any:
        """A cached SDK API object, e.g. `api("crm.deals.search_api")`."""
        with self._lock:
            found = self._apis.get(path)
            if found is None:
                found = self._client
                for part in path.split("."):
                    found = getattr(found, part)
                self._apis[path] = found
            return found

    def close(self) -> None:
        with self._lock:
            apis, self._apis = list(self._apis.values()), {}
        for api in apis:
            client = getattr(api, "api_client", None)
            if client is None:
                continue
            client.close()
            client.rest_client.pool_manager.clear()

    # -- calls -------------------------------------------------------------------------
    def call(self, endpoint: str, method: Callable[..., Any], *, items: int = 0,
             search: bool = False, retry_ambiguous: bool = True, auth: bool = True,
             **kwargs: Any) -> Any:
        """Run one SDK `*_with_http_info` method and return its data.

        Retries 429s, 5xx, timeouts and connection errors within `retry_budget` seconds;
        with `retry_ambiguous=False`, a failure after which the request may have been applied
        (5xx, read timeout, dropped connection) is raised at once for the caller to reconcile.
        """

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, TransientError) and (retry_ambiguous or not exc.ambiguous)

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            wait=_wait,
            stop=stop_before_delay(self.retry_budget) | stop_after_attempt(MAX_ATTEMPTS),
            before_sleep=partial(self._log_retry, endpoint),
            reraise=True,
        )
        return retrying(self._once, endpoint, method, kwargs, items, search, auth)

    def _once(self, endpoint: str, method: Callable[..., Any], kwargs: dict[str, Any],
              items: int, search: bool, auth: bool) -> Any:
        refreshes = 0
        while True:
            if not auth:
                return self._send(endpoint, method, kwargs, items, None)
            self.budget.check(connection=self.name, endpoint=endpoint)
            with self.limiter.slot(search=search):
                token = self.tokens.current()
                try:
                    return self._send(endpoint, method, kwargs, items, token)
                except AuthError as exc:
                    failure: ConnectorError = exc
                except TransientError as exc:
                    if exc.retry_after:
                        self.limiter.pause(min(exc.retry_after, MAX_RETRY_AFTER))
                    raise
            if failure.status == 401 and refreshes < MAX_REAUTH \
                    and self.tokens.after_unauthorized(token):
                refreshes += 1  # HubSpot: refresh on EXPIRED_AUTHENTICATION, replay (bounded)
                continue
            raise failure

    def _send(self, endpoint: str, method: Callable[..., Any], kwargs: dict[str, Any],
              items: int, token: str | None) -> Any:
        guard = self.guard
        if guard is not None:
            guard()
        extra: dict[str, Any] = {"_request_timeout": self._timeout}
        if self.run_id:
            extra["_headers"] = {RUN_HEADER: self.run_id}
        if token is not None:
            extra["_request_auth"] = {"in": "header", "type": "oauth2", "key": "Authorization",
                                      "value": f"Bearer {token}"}
        started = time.monotonic()
        try:
            data, status, headers = method(**kwargs, **extra)
        except Exception as raised:
            exc: BaseException = raised
            if isinstance(raised, AttributeError) and raised.__context__ is not None \
                    and is_api_exception(raised.__context__):
                # SDK bug: rest.py turns a TLS failure into ApiException(status=0, body=None),
                # then api_client crashes decoding that body; the ApiException is the context.
                exc = raised.__context__
            secrets = self.tokens.secrets()
            if is_api_exception(exc):
                failure = from_api_exception(exc, connection=self.name, endpoint=endpoint,
                                             secrets=secrets)
                self.budget.observe(getattr(exc, "headers", None))
            elif isinstance(exc, urllib3.exceptions.HTTPError):
                failure = from_transport_error(exc, connection=self.name, endpoint=endpoint,
                                               secrets=secrets)
            else:
                raise
            self._record(endpoint, failure.status, started, items, failure.code or "error")
            raise failure from None  # the SDK's exception text holds the response body
        if token is not None:
            self.budget.observe(headers)
        self._record(endpoint, int(status), started, items, None)
        content_type = str((headers or {}).get("Content-Type", ""))
        if data is None and int(status) != 204 and "json" not in content_type.lower():
            # A 2xx that is not the API's JSON (an HTML page from a proxy or a login portal):
            # the SDK returns None for it, which no caller can read.
            raise ConnectorError(
                f"the CRM answered {status} with {content_type or 'no content type'}, not the "
                "API's JSON: is a proxy or a login page between winback and HubSpot?",
                connection=self.name, endpoint=endpoint, status=int(status))
        return data

    def _record(self, endpoint: str, status: int | None, started: float, items: int,
                error: str | None) -> None:
        ms = round((time.monotonic() - started) * 1000, 1)
        with self._lock:
            self.calls_made += 1
        log.debug("crm.call", connection=self.name, crm=CRM, endpoint=endpoint, status=status,
                  ms=ms, items=items, error=error)
        if self._observer is not None:
            try:
                self._observer(CallRecord(self.name, CRM, endpoint, status, ms, items, error))
            except Exception as exc:  # metrics must never break a CRM call
                log.warning("crm.observer_failed", connection=self.name, error=repr(exc))

    def _log_retry(self, endpoint: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else None
        log.warning("crm.retry", connection=self.name, crm=CRM, endpoint=endpoint,
                    attempt=state.attempt_number, wait=round(sleep or 0.0, 3),
                    status=getattr(exc, "status", None), error=getattr(exc, "code", None),
                    retry_after=getattr(exc, "retry_after", None))

    # -- OAuth ---------------------------------------------------------------------------
    def _fetch_token(self, refresh_token: str) -> Grant:
        """`POST /oauth/v1/token` (form-encoded, no Authorization header; reference §5)."""
        tokens = self.api("oauth.tokens_api")
        try:
            data = self.call("oauth.token", tokens.create_with_http_info, auth=False,
                             grant_type="refresh_token", client_id=self.settings.auth.client_id,
                             client_secret=self.settings.auth.client_secret,
                             refresh_token=refresh_token)
        except Rejected as exc:
            raise AuthError(f"OAuth token refresh refused: {exc.message}",
                            connection=self.name, endpoint="oauth.token", status=exc.status,
                            code=exc.code) from None
        if not getattr(data, "access_token", None):
            raise AuthError("OAuth token refresh returned no access token",
                            connection=self.name, endpoint="oauth.token")
        expires_in = float(getattr(data, "expires_in", None) or 1800)
        log.info("crm.token_refreshed", connection=self.name, crm=CRM, expires_in=expires_in)
        return Grant(str(data.access_token), getattr(data, "refresh_token", None), expires_in)


def _wait(state: RetryCallState) -> float:
    """Honour Retry-After (clamped, plus a little jitter), else exponential full jitter; a
    429 without Retry-After waits at least a second (search counts per second, §5)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float):
        return min(float(retry_after), MAX_RETRY_AFTER) + random.uniform(0.05, 0.25)
    wait = float(_backoff(state))
    return max(wait, 1.0 + random.uniform(0.0, 0.25)) if getattr(exc, "status", None) == 429 \
        else wait
