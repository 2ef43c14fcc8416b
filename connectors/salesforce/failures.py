"""Salesforce failures mapped onto the port's error tree (`connectors.errors`).

simple-salesforce raises one exception class per HTTP status (reference §6 "Exceptions"); the
Salesforce error code inside the body decides what the caller should do (§4 table):

    401 INVALID_SESSION_ID                  re-login (client.py, bounded), then AuthError
    403 REQUEST_LIMIT_EXCEEDED TotalRequests BudgetExhausted (no retry: the day's budget is gone)
    403 REQUEST_LIMIT_EXCEEDED Concurrent... TransientError (short backoff)
    403 anything else                       PermissionDenied
    400 UNABLE_TO_LOCK_ROW / QUERY_TIMEOUT  TransientError
    400 INVALID_QUERY_LOCATOR               StaleCursor (the pager re-runs the query)
    400 INVALID_FIELD / MALFORMED_QUERY /
        INVALID_TYPE                        SetupError naming the field
    5xx, SERVER_UNAVAILABLE, transport      TransientError (`maybe_applied` when the request
                                            may have reached the server)

Messages never carry the request, the session id or credentials (`transport.scrub`).
"""

from __future__ import annotations

import re
from typing import Any

import requests
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConnectorError,
    FatalConnectionError,
    PermissionDenied,
    RetryableError,
    SetupError,
)
from connectors.salesforce.transport import scrub

TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "QUERY_TIMEOUT",
                             "UNKNOWN_EXCEPTION"})
SETUP_CODES = frozenset({"INVALID_FIELD", "MALFORMED_QUERY", "INVALID_TYPE",
                         "INVALID_FIELD_FOR_INSERT_UPDATE"})
_LOGIN_TRANSIENT = frozenset({"UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE", "unknown_error",
                              "temporarily_unavailable"})
_COLUMN = re.compile(r"No such column '([^']+)'")


class TransientError(RetryableError):
    """Worth retrying now. `maybe_applied`: the request may have been carried out although no
    answer came back (a read timeout, a 5xx), so a non-idempotent write must look before it
    re-sends (reference §3.6 point 3)."""

    def __init__(self, message: str, *, maybe_applied: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.maybe_applied = maybe_applied


class StaleCursor(ConnectorError):
    """A query locator expired or was released (400 INVALID_QUERY_LOCATOR): re-run the query."""


class PendingRecords(TransientError):
    """Some records of a batch failed with a retryable per-record error (UNABLE_TO_LOCK_ROW)."""


def _first_error(content: Any) -> tuple[str, str, list[str]]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        item = content[0]
        fields = item.get("fields") or []
        return (str(item.get("errorCode") or ""), str(item.get("message") or ""),
                [str(f) for f in fields])
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error") or ""), str(
            content.get("message") or content.get("error_description") or ""), []
    return "", str(content or "")[:200], []


def translate(exc: Exception, *, connection: str, endpoint: str, secrets: tuple[str, ...],
              retry_after: float | None = None, field_hint: dict[str, str] | None = None,
              ) -> ConnectorError:
    """The connector error for an exception raised by simple-salesforce or requests."""
    where: dict[str, Any] = {"connection": connection, "endpoint": endpoint}
    if isinstance(exc, requests.exceptions.SSLError):
        return FatalConnectionError("TLS verification failed (check ca_bundle and login_url)",
                                    **where)
    if isinstance(exc, requests.RequestException):
        sent = not isinstance(exc, requests.exceptions.ConnectTimeout)
        return TransientError(f"transport error: {type(exc).__name__}", maybe_applied=sent,
                              **where)
    if not isinstance(exc, SalesforceError):
        return ConnectorError(scrub(f"{type(exc).__name__}: {exc}", *secrets)[:300], **where)
    status = int(exc.status)
    code, full, fields = _first_error(exc.content)
    message = _short(scrub(full, *secrets))
    where.update(status=status, code=code or None)
    if isinstance(exc, SalesforceExpiredSession):
        return AuthError(f"session refused after a fresh login: {message}", **where)
    if isinstance(exc, SalesforceRefusedRequest):
        if code == "REQUEST_LIMIT_EXCEEDED" and "concurrent" in message.lower():
            return TransientError(message, retry_after=retry_after, **where)
        if code == "REQUEST_LIMIT_EXCEEDED":
            return BudgetExhausted(f"daily API limit reached: {message}", **where)
        return PermissionDenied(message or "request refused", **where)
    if isinstance(exc, SalesforceMalformedRequest):
        if code == "INVALID_QUERY_LOCATOR":
            return StaleCursor(message, **where)
        if code in TRANSIENT_CODES:
            return TransientError(message, retry_after=retry_after, **where)
        if code.startswith("INSUFFICIENT_ACCESS"):
            return PermissionDenied(message, **where)
        if code in SETUP_CODES:
            return setup_error(full, message, fields, field_hint or {}, **where)
        return ConnectorError(message or "bad request", **where)
    if status >= 500:
        # 503 is Salesforce refusing work while overloaded or in maintenance; any other 5xx
        # (or a proxy's 502/504) may come after the request was carried out.
        return TransientError(message or f"HTTP {status}", retry_after=retry_after,
                              maybe_applied=status != 503, **where)
    return ConnectorError(message or f"HTTP {status}", **where)


def _short(message: str) -> str:
    # Query errors quote the whole SOQL before "ERROR at Row:..": keep the part that explains.
    at = message.find("ERROR at ")
    return (message[at:] if at >= 0 else message).strip()[:500]


def setup_error(full: str, message: str, fields: list[str], hint: dict[str, str],
                **where: Any) -> SetupError:
    """A query or write named a field the org does not have (or hides from our user)."""
    found = _COLUMN.search(full)
    name = found.group(1) if found else (fields[0] if fields else "")
    setting = hint.get(name.lower())
    if setting:
        error = SetupError(f"field {name} (configured as {setting}) is missing or not visible "
                           f"to the integration user: {message}", **where)
        error.fix = (f"create {name} on the object, grant the integration user read access, "
                     f"or correct {setting} in the connection's config")
        return error
    return SetupError(message, **where)


# Login refusals by error_description (OAuth) or exceptionCode (SOAP), each with its fix.
_LOGIN_FIXES: tuple[tuple[str, str], ...] = (
    ("invalid assertion",
     "the assertion's signature does not match a certificate of the app {client_id}: upload "
     "the certificate of private_key_file to the app (Use digital signatures), or point "
     "private_key_file at the key of the uploaded certificate"),
    ("audience is invalid",
     "login_url must be the org's login host: https://login.salesforce.com (production), "
     "https://test.salesforce.com (sandbox) or its My Domain"),
    ("user hasn't approved this consumer",
     "pre-authorise {username} for the app: Permitted Users = \"Admin approved users are "
     "pre-authorized\", then add a permission set (or profile) {username} has to the app"),
    ("expired authorization code",
     "the assertion had expired when Salesforce read it: synchronise this host's clock (NTP)"),
    ("no client credentials user enabled",
     "enable the client credentials flow on the app and choose its Run As user "
     "(Manage > Edit Policies > Client Credentials Flow)"),
    ("request not supported on this domain",
     "client_credentials needs login_url = the org's My Domain, e.g. "
     "https://acme.my.salesforce.com"),
    ("client identifier invalid",
     "client_id must be the consumer key of the app in this org (Setup > App Manager > "
     "View > Manage Consumer Details)"),
    ("invalid client credentials",
     "client_secret must be the app's current consumer secret (Manage Consumer Details)"),
)


def login_fix(message: str, **names: str) -> str | None:
    lowered = message.lower()
    for needle, fix in _LOGIN_FIXES:
        if needle in lowered:
            return fix.format(**{k: v or "?" for k, v in names.items()})
    return None


def login_error(exc: Exception, *, connection: str, secrets: tuple[str, ...], flow: str = "",
                login_url: str = "", username: str = "", client_id: str = ""
                ) -> ConnectorError:
    """A failed login: refused credentials are fatal (with the fix Salesforce's answer points
    at), server trouble is worth a retry."""
    where: dict[str, Any] = {"connection": connection, "endpoint": "login"}
    if isinstance(exc, SalesforceAuthenticationFailed):
        code = exc.code
        message = scrub(str(exc.auth_message or ""), *secrets)[:300]
        # An HTTP status as the code: the token endpoint's answer was not JSON (simple-salesforce
        # passes the status on then); Salesforce's own refusals carry an `error` string.
        not_json = isinstance(code, int) and code < 500 and code != 429
        if code is None or code == "UNKNOWN_EXCEPTION_CODE" or not_json:
            # No SOAP fault in the answer: not Salesforce's login API speaking (a proxy's
            # error page, an SSO or login page), so not a verdict on the credentials.
            page = " (a web page)" if "<html" in message.lower() else ""
            return ConnectorError(
                f"the login host answered without a Salesforce login result{page}: a proxy, "
                "an SSO or maintenance page, or a wrong login_url", **where)
        busy = "concurrentrequests" in message.lower().replace(" ", "")
        if (isinstance(code, int) and (code >= 500 or code == 429 or busy)) \
                or code in _LOGIN_TRANSIENT:
            return TransientError(f"login failed ({code}): {message}", **where)
        how = f" ({flow} flow at {login_url})" if flow else ""
        error = AuthError(f"login refused{how}: {code}: {message}", code=str(code), **where)
        fix = login_fix(message, username=username, client_id=client_id)
        if fix is not None:
            error.fix = fix
        return error
    return translate(exc, connection=connection, endpoint="login", secrets=secrets)
