"""One logged-in simple-salesforce client with the call discipline every request follows.

Login: `login.login` for the configured flow (JWT bearer, client credentials, or the legacy
OAuth username-password and SOAP logins), then a `Salesforce` in direct session mode.
simple-salesforce's built-in refresh would re-login on every 401 and, in SFType calls,
recurse without bound (reference §6 "Retries"); it also drops extra headers on the replay.
In direct mode a 401 surfaces as `SalesforceExpiredSession`, and `call` logs in again (for
jwt: a fresh assertion) and repeats the request at most `MAX_REAUTH` times before it gives
up with AuthError.

Every call: budget guard -> request -> (401: re-login, repeat; bounded) -> map failures; the one
tenacity policy (`retrying`) retries what `failures` marks transient, with full-jitter
exponential backoff, until `retry_budget` seconds would be passed. Each HTTP request becomes a
`crm.call` log line and a CallRecord for the observer.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any, TypeVar

import structlog
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_random_exponential,
)

from connectors.base import (
    MAX_REAUTH,
    ApiUsage,
    CallObserver,
    CallRecord,
    SalesforceSettings,
)
from connectors.errors import BudgetExhausted, ConnectorError, Interrupted, RetryableError
from connectors.salesforce.failures import StaleCursor, login_error, translate
from connectors.salesforce.login import key_file_text, login
from connectors.salesforce.transport import DEFAULT_LOGIN_HOST, SalesforceTransport, Trace

T = TypeVar("T")
# 1,000 rows a page (the maximum is 2,000): half the memory of a page in flight for one more
# call per 1,000 changed deals (bench/RESULTS.md: 140 MB instead of 155 MB at 100k deals).
BATCH_HEADER = {"Sforce-Query-Options": "batchSize=1000"}
MAX_RETRY_AFTER = 60.0
LOGIN_ENDPOINTS = ("login.soap", "login.oauth")


def log() -> Any:
    # A fresh proxy per use, so `structlog.testing.capture_logs` sees events even when the
    # application configured `cache_logger_on_first_use`.
    return structlog.get_logger("connectors.salesforce")


MAX_CURSOR_RESTARTS = 3  # re-runs of a query whose locator died, per read


def cursor_restart(connection: str, restarts: int, since: datetime, during: str,
                   **fields: str) -> int:
    """A read's query locator died (StaleCursor: expired, or released past 10 open cursors):
    count the restart (it re-runs from `since`), log it, or give up past MAX_CURSOR_RESTARTS
    with a RetryableError (the next tick resumes from its watermark)."""
    restarts += 1
    if restarts > MAX_CURSOR_RESTARTS:
        raise RetryableError(f"query locators keep expiring during {during}",
                             connection=connection, endpoint="query_more") from None
    log().warning("crm.cursor_restart", connection=connection, crm="salesforce",
                  since=since.isoformat(), **fields)
    return restarts


class Client:
    def __init__(self, settings: SalesforceSettings, observer: CallObserver | None, *,
                 retry_budget: float = 20.0, clock: Callable[[], datetime] | None = None
                 ) -> None:
        self.settings = settings
        self.retry_budget = retry_budget  # seconds one call may spend retrying
        self.clock = clock
        self.observer = observer
        self.transport = SalesforceTransport(settings.login_url or DEFAULT_LOGIN_HOST,
                                             timeout=settings.timeout,
                                             ca_bundle=settings.ca_bundle)
        a = settings.auth
        self.secrets = tuple(s for s in (a.password, a.security_token, a.client_secret,
                                         a.private_key, key_file_text(a.private_key_file)) if s)
        self.field_hint: dict[str, str] = {}
        self._sf: Salesforce | None = None
        self._login_lock = threading.Lock()
        self._backoff = wait_random_exponential(multiplier=0.5, max=20)

    # -- login ---------------------------------------------------------------------------
    def _login(self) -> Salesforce:
        s = self.settings
        try:
            session_id, instance = login(s, self.transport, self.clock)
        except (ConnectorError, Interrupted):
            raise
        except Exception as exc:
            raise login_error(exc, connection=s.name, secrets=self.secrets, flow=s.login_flow,
                              login_url=s.login_url, username=s.auth.username or "",
                              client_id=s.auth.client_id or "") from None
        instance_url = s.instance_url or f"https://{instance.rstrip('/')}"
        log().info("crm.login", connection=s.name, crm="salesforce", flow=s.login_flow)
        return Salesforce(session_id=session_id, instance_url=instance_url,
                          session=self.transport, version=s.api_version)

    def sf(self) -> Salesforce:
        with self._login_lock:
            if self._sf is None:
                self._sf = self._login()
            return self._sf

    def _relogin(self, stale: Salesforce) -> Salesforce:
        with self._login_lock:
            if self._sf is stale or self._sf is None:  # another thread may have done it
                log().info("crm.relogin", connection=self.settings.name, crm="salesforce")
                self._sf = self._login()
            return self._sf

    @property
    def instance_host(self) -> str | None:
        return self._sf.sf_instance if self._sf is not None else None

    # -- usage and budget -----------------------------------------------------------------
    def usage(self) -> ApiUsage | None:
        seen = self.transport.usage
        return ApiUsage(seen.used, seen.limit) if seen is not None else None

    def guard(self, endpoint: str) -> None:
        usage = self.usage()
        share = self.settings.api_budget_share
        if usage is not None and usage.limit and usage.used >= share * usage.limit:
            raise BudgetExhausted(
                f"{usage.used} of {usage.limit} daily API calls used; winback may use "
                f"{share:.0%} ({int(share * usage.limit)})",
                connection=self.settings.name, endpoint=endpoint)

    # -- one call ------------------------------------------------------------------------
    def call(self, endpoint: str, fn: Callable[[Salesforce], T], *,
             items: Callable[[T], int] | int = 0, retry: bool = True) -> T:
        """Run `fn(sf)` (one HTTP request) under the guard, re-login and failure mapping;
        with `retry`, under the retry policy too."""
        def attempt() -> T:
            result: T | None = None
            try:
                self.guard(endpoint)
                result = self._logged_in(endpoint, fn)
                return result
            except (ConnectorError, Interrupted):
                raise
            except Exception as exc:
                last = self.transport.last_trace()
                raise translate(exc, connection=self.settings.name, endpoint=endpoint,
                                secrets=self.secrets,
                                retry_after=last.retry_after if last else None,
                                field_hint=self.field_hint) from None
            finally:
                count = items(result) if callable(items) and result is not None else items
                self._flush(endpoint, count if isinstance(count, int) else 0)
        return self.retrying(endpoint, attempt) if retry else attempt()

    def _logged_in(self, endpoint: str, fn: Callable[[Salesforce], T]) -> T:
        """`fn(sf)`; on an expired session, a fresh login and `fn` again, at most
        MAX_REAUTH times (the refused request still counts as a call)."""
        sf = self.sf()
        relogins = 0
        while True:
            try:
                return fn(sf)
            except SalesforceExpiredSession:
                if relogins == MAX_REAUTH:
                    raise
                relogins += 1
                self._flush(endpoint, 0)
                sf = self._relogin(sf)

    def retrying(self, endpoint: str, attempt: Callable[[], T]) -> T:
        """The one retry policy: transient failures, full jitter, `retry_budget` seconds."""
        policy = Retrying(retry=retry_if_exception_type(RetryableError), wait=self._wait,
                          stop=stop_before_delay(self.retry_budget), reraise=True,
                          before_sleep=lambda state: self._log_retry(endpoint, state))
        try:
            return policy(attempt)
        except RetryableError as exc:
            tries = policy.statistics.get("attempt_number", 1)
            if tries > 1:
                exc.message = f"{exc.message} (gave up after {tries} attempts)"
            raise

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and hint > 0:
            return min(float(hint), MAX_RETRY_AFTER) + random.uniform(0, 0.5)
        return float(self._backoff(state))

    def _log_retry(self, endpoint: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log().warning("crm.retry", connection=self.settings.name, crm="salesforce",
                      endpoint=endpoint, attempt=state.attempt_number,
                      wait_s=round(state.upcoming_sleep, 3),
                      error=getattr(exc, "code", None) or type(exc).__name__)

    def _flush(self, endpoint: str, items: int) -> None:
        traces = self.transport.drain()
        data = [t for t in traces if t.endpoint not in LOGIN_ENDPOINTS]
        for trace in traces:
            count = items if data and trace is data[-1] and trace.error is None else 0
            self._emit(trace, count)

    def _emit(self, trace: Trace, items: int) -> None:
        name = self.settings.name
        log().debug("crm.call", connection=name, crm="salesforce", endpoint=trace.endpoint,
                    status=trace.status, ms=round(trace.ms, 1), items=items, error=trace.error)
        if self.observer is not None:
            try:
                self.observer(CallRecord(name, "salesforce", trace.endpoint, trace.status,
                                         trace.ms, items, trace.error))
            except Exception as exc:  # metrics trouble must not fail a CRM call
                log().warning("crm.observer_failed", connection=name, error=type(exc).__name__)

    # -- queries -------------------------------------------------------------------------
    def pages(self, soql: str, *, include_deleted: bool, retry: bool = True,
              on_total: Callable[[int], None] | None = None
              ) -> Generator[list[dict[str, Any]], None, None]:
        """The records of a SOQL query, one REST page (up to 2,000) at a time; each page is
        its own call with its own retries. Raises StaleCursor if a locator dies midway.
        `on_total` gets the first answer's totalSize (the whole result's row count) before
        the first page is yielded."""
        first = "queryAll" if include_deleted else "query"
        result: dict[str, Any] = self.call(
            first, lambda sf: sf.query(soql, include_deleted=include_deleted,
                                       headers=BATCH_HEADER),
            items=lambda r: len(r["records"]), retry=retry)
        if on_total is not None:
            on_total(int(result.get("totalSize") or 0))
        yield list(result["records"])
        while not result.get("done", True):
            next_url = str(result.get("nextRecordsUrl") or "")
            if not next_url.startswith("/services/data/"):
                raise ConnectorError(f"unexpected nextRecordsUrl {next_url[:80]!r}",
                                     connection=self.settings.name, endpoint="query_more")
            result = self.call("query_more", _more(next_url), items=lambda r: len(r["records"]),
                               retry=retry)
            yield list(result["records"])

    def query_all(self, soql: str, *, include_deleted: bool = False, retry: bool = True
                  ) -> list[dict[str, Any]]:
        """Every record of a (small) query; re-runs it if a locator goes stale."""
        for attempt in range(3):
            try:
                return [r for page in self.pages(soql, include_deleted=include_deleted,
                                                 retry=retry) for r in page]
            except StaleCursor:
                if attempt == 2:
                    raise
                log().warning("crm.cursor_restart", connection=self.settings.name,
                              crm="salesforce")
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.transport.close()


def _more(next_url: str) -> Callable[[Salesforce], Any]:
    # nextRecordsUrl is a path on the instance; simple-salesforce prefixes the instance host.
    return lambda sf: sf.query_more(next_url, identifier_is_url=True, headers=BATCH_HEADER)
