"""The HTTP session every Salesforce request goes through, logins included.

simple-salesforce builds login URLs as `https://{domain}.salesforce.com/...` only (reference §6
"Constructor modes"), so the session rewrites the login host to the configured `login_url`.
SFType methods take no `timeout`, so the session sets a default one on every request (§6
"Timeouts"). `trust_env` is off because `REQUESTS_CA_BUNDLE` would otherwise override `verify`
(§6 "Pointing it at an emulator").

The session also keeps what the connector reports about each call: a trace per HTTP request
(logical endpoint, status, time, error code) and the last `Sforce-Limit-Info` usage (§4), which
Salesforce sends on every REST answer, errors included.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from simple_salesforce.api import Salesforce

DEFAULT_LOGIN_HOST = "https://login.salesforce.com"
RUN_HEADER = "X-Winback-Run"
_DATA_PATH = re.compile(r"^/services/data/v\d+\.\d+/(?P<rest>.*?)/?$")
_COLLECTION_OPS = {"POST": "create", "PATCH": "update", "DELETE": "delete", "GET": "retrieve"}
_SECRETS = (  # (pattern, replacement)
    (re.compile(r"(?i)\b(bearer|oauth)\s+[^\s'\",]{16,}"), r"\1 [redacted]"),
    (re.compile(r"00D[A-Za-z0-9]{12,15}![A-Za-z0-9._\-]+"), "[redacted]"),  # session id / token
    (re.compile(r"(?i)(<(?:\w+:)?(?:sessionId|password)>)[^<]*"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:session_?id|access_token|client_secret|password)[\"']?\s*[:=]\s*"
                r"[\"']?)[^\s\"'&,}]+"), r"\1[redacted]"),
)


def scrub(text: str, *secrets: str | None) -> str:
    """`text` without bearer tokens, session ids or any of `secrets`."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


@dataclass
class Trace:
    """One HTTP request as the connector reports it (CallRecord / `crm.call`)."""

    endpoint: str
    status: int | None
    ms: float
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Usage:
    used: int
    limit: int


def endpoint_name(method: str, url: str) -> str:
    """A stable, id-free name for a Salesforce URL (metrics labels, logs, errors)."""
    path = urlsplit(url).path
    if "/services/Soap/u/" in path:
        return "login.soap"
    if path.rstrip("/").endswith("/services/oauth2/token"):
        return "login.oauth"
    if path.rstrip("/") == "/services/data":
        return "versions"
    match = _DATA_PATH.match(path)
    if match is None:
        return "other"
    rest = match.group("rest")
    if rest in ("query", "queryAll", "limits"):
        return rest
    if rest.startswith(("query/", "queryAll/")):
        return "query_more"
    if rest.startswith("composite/sobjects"):
        upsert = method.upper() == "PATCH" and rest.count("/") >= 3
        return "collections." + ("upsert" if upsert else _COLLECTION_OPS.get(method.upper(), "?"))
    parts = rest.split("/")
    if rest.startswith("jobs/query"):  # Bulk API 2.0 query jobs
        if len(parts) == 2:
            return "bulk2.create" if method.upper() == "POST" else "bulk2.jobs"
        return "bulk2.results" if parts[-1] == "results" else "bulk2.job"
    if len(parts) == 3 and parts[0] == "sobjects" and parts[2] == "describe":
        return f"describe.{parts[1]}"
    return parts[0] or "resources"


def _error_code(response: requests.Response) -> str | None:
    if response.status_code < 400:
        return None
    body = response.content[:4096]
    try:
        data: Any = json.loads(body)
    except ValueError:
        found = re.search(rb"<sf:exceptionCode>([A-Z_]+)<", body)
        return found.group(1).decode() if found else f"HTTP_{response.status_code}"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return str(data[0].get("errorCode") or f"HTTP_{response.status_code}")
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return f"HTTP_{response.status_code}"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class SalesforceTransport(requests.Session):
    """A `requests.Session` that sends logins to `login_url`, times every request out, and
    records a trace per request (per thread) plus the last API usage seen."""

    def __init__(self, login_url: str, *, timeout: float, ca_bundle: str | None) -> None:
        super().__init__()
        self.login_url = login_url.rstrip("/")
        self.timeout = timeout
        self.verify = ca_bundle if ca_bundle else True
        self.trust_env = False
        self.usage: Usage | None = None
        self.guard: Callable[[], None] | None = None  # before every request (set_run)
        self.calls_made = 0
        self._count_lock = threading.Lock()
        self._local = threading.local()

    def set_run(self, run_id: str | None, guard: Callable[[], None] | None = None) -> None:
        self.guard = guard
        if run_id:
            self.headers[RUN_HEADER] = run_id
        else:
            self.headers.pop(RUN_HEADER, None)

    def drain(self) -> list[Trace]:
        """The traces recorded on this thread since the last drain."""
        traces: list[Trace] = getattr(self._local, "traces", [])
        self._local.traces = []
        return traces

    def last_trace(self) -> Trace | None:
        traces: list[Trace] = getattr(self._local, "traces", [])
        return traces[-1] if traces else None

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        verb = method.decode() if isinstance(method, bytes) else method
        if text.startswith(DEFAULT_LOGIN_HOST + "/"):
            text = self.login_url + text[len(DEFAULT_LOGIN_HOST):]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        guard = self.guard
        if guard is not None:
            guard()
        endpoint = endpoint_name(verb, text)
        started = time.perf_counter()
        with self._count_lock:
            self.calls_made += 1
        try:
            response = super().request(verb, text, *args, **kwargs)
        except requests.RequestException as exc:
            self._record(Trace(endpoint, None, _ms(started), type(exc).__name__))
            raise
        self._record(Trace(endpoint, response.status_code, _ms(started), _error_code(response),
                           _retry_after(response)))
        limit_info = response.headers.get("Sforce-Limit-Info")
        if limit_info:
            parsed = Salesforce.parse_api_usage(limit_info).get("api-usage")
            if parsed is not None:
                self.usage = Usage(int(parsed.used), int(parsed.total))
        return response

    def _record(self, trace: Trace) -> None:
        traces: list[Trace] | None = getattr(self._local, "traces", None)
        if traces is None:
            traces = self._local.traces = []
        traces.append(trace)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
