"""Authentication (reference §5): private-app static bearer tokens, and OAuth access tokens
issued by `POST /oauth/v1/token` (refresh_token or authorization_code grant) that expire
after a TTL measured on the emulator clock.

Strict, like HubSpot: a static token is accepted only if registered (the emulator's `tokens`
option, default the published sandbox token, or `POST /__sandbox/tokens/register`); any other
bearer is 401 INVALID_AUTHENTICATION."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sandbox.hubspot.errors import correlation_id, fail
from sandbox.hubspot.ratelimit import portal_of
from sandbox.hubspot.values import iso_ms
from sandbox.messages import HttpError, Response

NO_CREDENTIALS = ("Authentication credentials not found. This API supports OAuth 2.0 "
                  "authentication and you can find more details at "
                  "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
SANDBOX_TOKEN = "pat-sandbox-0000"  # noqa: S105 - the published token of `winback sandbox`
SCOPES = ["crm.objects.deals.read", "crm.objects.contacts.read", "crm.objects.contacts.write",
          "crm.objects.companies.read", "crm.objects.owners.read", "crm.schemas.deals.read",
          "oauth"]


@dataclass(frozen=True)
class Caller:
    principal: str
    oauth: bool  # OAuth apps get no daily limit and no daily headers


@dataclass
class Issued:
    refresh_token: str
    expires_at: datetime


class Auth:
    def __init__(self, *, tokens: Iterable[str], client_id: str, client_secret: str,
                 refresh_tokens: Iterable[str], auth_codes: Iterable[str],
                 ttl_seconds: float) -> None:
        self.static = set(tokens)
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = set(refresh_tokens)
        self.auth_codes = set(auth_codes)
        self.ttl_seconds = ttl_seconds
        self._issued: dict[str, Issued] = {}
        self._lock = threading.Lock()
        self.doomed = 0  # this many tokens issued from now on are expired at birth

    @staticmethod
    def bearer(header: str | None) -> str | None:
        if not header or header[:7].lower() != "bearer ":
            return None
        return header[7:].strip() or None

    def principal(self, header: str | None) -> str:
        """Who a call counts against; never raises (the core calls it for every request)."""
        token = self.bearer(header)
        if token is None:
            return "anonymous"
        with self._lock:
            issued = self._issued.get(token)
        return f"oauth:{issued.refresh_token}" if issued else token

    def authenticate(self, header: str | None, now: datetime) -> Caller:
        token = self.bearer(header)
        if token is None:
            fail(401, "INVALID_AUTHENTICATION", NO_CREDENTIALS)
        with self._lock:
            issued = self._issued.get(token)
        if issued is not None:
            if now >= issued.expires_at:
                hours = int((now - issued.expires_at).total_seconds() // 3600)
                fail(401, "EXPIRED_AUTHENTICATION",
                     f"The OAuth token used to make this call expired {hours} hour(s) ago.",
                     context={"expire time": [iso_ms(issued.expires_at)]})
            return Caller(f"oauth:{issued.refresh_token}", True)
        with self._lock:
            known = token in self.static
        if known:
            return Caller(token, False)
        fail(401, "INVALID_AUTHENTICATION", NO_CREDENTIALS)

    def register(self, tokens: Iterable[str]) -> int:
        """Accept these static tokens too; returns how many are registered now."""
        with self._lock:
            self.static.update(tokens)
            return len(self.static)

    def expire_all(self, now: datetime, and_next: int = 0) -> int:
        with self._lock:
            self.doomed = and_next
            for issued in self._issued.values():
                issued.expires_at = min(issued.expires_at, now)
            return len(self._issued)

    # -- POST /oauth/v1/token -----------------------------------------------------------
    def token(self, form: dict[str, list[str]], now: datetime) -> Response:
        def field(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        grant = field("grant_type")
        if grant not in ("refresh_token", "authorization_code"):
            _oauth_error("BAD_GRANT_TYPE", f"unsupported grant_type {grant!r}")
        if field("client_id") != self.client_id:
            _oauth_error("BAD_CLIENT_ID", "missing or unknown client id")
        if field("client_secret") != self.client_secret:
            _oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        if grant == "refresh_token":
            refresh = field("refresh_token")
            if refresh is None or refresh not in self.refresh_tokens:
                _oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        else:
            code = field("code")
            if code is None or code not in self.auth_codes:
                _oauth_error("BAD_AUTH_CODE", "missing or unknown auth code")
            if not field("redirect_uri"):
                _oauth_error("BAD_REDIRECT_URI", "missing redirect_uri")
            refresh = f"sandbox-refresh-{secrets.token_hex(12)}"
            self.refresh_tokens.add(refresh)
        access = "CO" + secrets.token_urlsafe(150)
        ttl = self.ttl_seconds
        with self._lock:
            expires = now + timedelta(seconds=ttl)
            if self.doomed > 0:  # revoked as soon as issued; expires_in still says ttl
                self.doomed -= 1
                expires = now
            self._issued[access] = Issued(refresh, expires)
        return Response.json(200, {"token_type": "bearer", "refresh_token": refresh,
                                   "access_token": access, "expires_in": int(ttl)})

    def token_info(self, token: str, now: datetime) -> Response:
        """`GET /oauth/v1/access-tokens/{token}`: who the token belongs to."""
        with self._lock:
            issued = self._issued.get(token)
        if issued is None or now >= issued.expires_at:
            _oauth_error("BAD_ACCESS_TOKEN", "missing, unknown or expired access token", 404)
        principal = f"oauth:{issued.refresh_token}"
        return Response.json(200, {
            "token": token, "user": "sandbox-user@winback.example", "hub_domain": "sandbox.example",
            "scopes": SCOPES, "hub_id": portal_of(principal), "app_id": 1_000_001,
            "expires_in": int((issued.expires_at - now).total_seconds()), "user_id": 9586504,
            "token_type": "access"})

    def snapshot(self, now: datetime) -> dict[str, Any]:
        with self._lock:
            live = sum(1 for i in self._issued.values() if now < i.expires_at)
            return {"issued": len(self._issued), "live": live, "ttl_seconds": self.ttl_seconds,
                    "static_tokens": len(self.static)}


def _oauth_error(status: str, message: str, http_status: int = 400) -> NoReturn:
    raise HttpError(Response.json(http_status, {"status": status, "message": message,
                                                "correlationId": correlation_id()}))
