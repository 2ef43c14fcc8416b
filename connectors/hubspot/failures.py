"""What a failed HubSpot call means for the caller (reference §5 errors, §6 exceptions).

The SDK raises one `ApiException` class per generated package (`hubspot.crm.deals.ApiException`
is not `hubspot.crm.objects.tasks.ApiException`), and transport failures come out as raw
urllib3 exceptions because the adapter turns urllib3's own retries off. Both are turned into
the port's error tree here:

    401                          AuthError (the transport refreshes an OAuth token first)
    403                          PermissionDenied (MISSING_SCOPES names the scopes)
    429 policyName DAILY         BudgetExhausted
    429 other, 5xx               TransientError (retried by the transport's tenacity policy)
    timeouts, connection errors  TransientError
    TLS verification failure     FatalConnectionError (the CA bundle is wrong)
    other 4xx                    Rejected (a RecordError carrying the parsed HubSpot error)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3.exceptions

from connectors.errors import (
    AuthError,
    BudgetExhausted,
    ConnectorError,
    FatalConnectionError,
    PermissionDenied,
    RecordError,
    RetryableError,
)

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
_MAX_MESSAGE = 500


def scrub(text: str, *secrets: str | None) -> str:
    """`text` without bearer tokens or any of `secrets`, cut to a readable length."""
    text = _BEARER.sub(r"\1[redacted]", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


@dataclass(frozen=True)
class ErrorBody:
    """The parts of a HubSpot error body (`Error` / 429 body, reference §5) worth acting on."""

    message: str = ""
    category: str | None = None
    sub_category: str | None = None
    policy: str | None = None  # 429s: TEN_SECONDLY_ROLLING | SECONDLY | DAILY
    context: dict[str, list[str]] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.sub_category or self.category


def parse_error(raw: object) -> ErrorBody:
    """Parse an error body (bytes, str or dict); anything unreadable becomes a bare message."""
    data: Any = raw
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except ValueError:
            return ErrorBody(message=raw.strip()[:_MAX_MESSAGE])
    if not isinstance(data, dict):
        return ErrorBody()
    return error_from_dict(data)


def error_from_dict(data: Mapping[str, Any]) -> ErrorBody:
    context: dict[str, list[str]] = {}
    raw_context = data.get("context")
    if isinstance(raw_context, Mapping):
        for key, values in raw_context.items():
            items = values if isinstance(values, list) else [values]
            context[str(key)] = [str(v) for v in items]
    sub = data.get("subCategory") if "subCategory" in data else data.get("sub_category")
    return ErrorBody(
        message=str(data.get("message") or ""),
        category=_text(data.get("category") or data.get("errorType")),
        sub_category=_text(sub),
        policy=_text(data.get("policyName")),
        context=context,
    )


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def property_problems(message: str) -> list[dict[str, Any]]:
    """The per-property list inside "Property values were not valid: [...]" (reference §5)."""
    start = message.find("[")
    if "not valid" not in message or start < 0:
        return []
    try:
        items = json.loads(message[start:])
    except ValueError:
        return []
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class TransientError(RetryableError):
    """A failure that may pass on its own (429, 5xx, timeout, connection error).

    `ambiguous`: the request may have reached HubSpot and been applied (a read timeout, a
    dropped connection, a 5xx), so a create must not simply be sent again (reference §3)."""

    def __init__(self, message: str, *, ambiguous: bool, retry_after: float | None = None,
                 **kw: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kw)
        self.ambiguous = ambiguous


class Rejected(RecordError):
    """HubSpot refused the request as sent (400/404/409/422...): `error` says why."""

    def __init__(self, message: str, *, error: ErrorBody, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.error = error


def from_api_exception(exc: BaseException, *, connection: str, endpoint: str,
                       secrets: tuple[str | None, ...] = ()) -> ConnectorError:
    """The port error for an SDK `ApiException` (any package's)."""
    status = int(getattr(exc, "status", 0) or 0)
    headers = getattr(exc, "headers", None)
    body = parse_error(getattr(exc, "body", None))
    message = scrub(body.message or str(getattr(exc, "reason", "") or f"HTTP {status}"),
                    *secrets)
    where: dict[str, Any] = {"connection": connection, "endpoint": endpoint, "status": status,
                             "code": body.code}
    if status == 401:
        return AuthError(f"HubSpot refused the credentials: {message}", **where)
    if status == 403:
        if body.category == "MISSING_SCOPES" or body.sub_category == "MISSING_SCOPES":
            scopes = ", ".join(body.context.get("requiredScopes", [])) or "see message"
            return PermissionDenied(f"the app lacks scopes ({scopes}): {message}", **where)
        return PermissionDenied(f"HubSpot denied the call: {message}", **where)
    if status == 429:
        if body.policy == "DAILY":
            return BudgetExhausted(f"HubSpot's daily API limit is spent: {message}", **where)
        return TransientError(f"rate limited ({body.policy or 'unknown policy'}): {message}",
                              ambiguous=False, retry_after=retry_after_seconds(headers), **where)
    if status == 0:  # no HTTP answer: the SDK wraps urllib3's SSLError this way
        reason = scrub(str(getattr(exc, "reason", "") or ""), *secrets)
        if "SSLError" in reason:
            return FatalConnectionError(f"TLS verification failed ({reason}); check ca_bundle",
                                        connection=connection, endpoint=endpoint, code="TLS")
        return TransientError(f"connection failed: {reason}", ambiguous=True,
                              connection=connection, endpoint=endpoint, code="CONNECTION")
    if status >= 500:
        return TransientError(f"HubSpot server error {status}: {message}", ambiguous=True,
                              retry_after=retry_after_seconds(headers), **where)
    return Rejected(message, error=body, **where)


_NOT_SENT = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)


def from_transport_error(exc: Exception, *, connection: str, endpoint: str,
                         secrets: tuple[str | None, ...] = ()) -> ConnectorError:
    """The port error for a urllib3 failure (no HTTP answer)."""
    reason: Exception = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        reason = exc.reason
    text = scrub(f"{type(reason).__name__}: {reason}", *secrets)
    where: dict[str, Any] = {"connection": connection, "endpoint": endpoint}
    if isinstance(reason, urllib3.exceptions.SSLError):
        return FatalConnectionError(f"TLS verification failed ({text}); check ca_bundle",
                                    code="TLS", **where)
    if isinstance(reason, _NOT_SENT):
        return TransientError(f"cannot connect to HubSpot: {text}", ambiguous=False,
                              code="CONNECT", **where)
    if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
        return TransientError(f"no answer in time: {text}", ambiguous=True, code="TIMEOUT",
                              **where)
    return TransientError(f"connection failed: {text}", ambiguous=True, code="CONNECTION",
                          **where)


def is_api_exception(exc: BaseException | None) -> bool:
    """An HTTP error answer from any generated SDK package (they share no base class)."""
    return type(exc).__module__.startswith("hubspot.") and hasattr(exc, "status") \
        and hasattr(exc, "body")
