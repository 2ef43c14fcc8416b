"""The bearer token for the next call (reference §5 "Auth").

A private app has a static token: a 401 is final. An OAuth app has an access token that lives
30 minutes: it is refreshed ahead of expiry from `expires_in` (HubSpot's advice, since "401s
are not a valid indicator"), and once more when a call gets a 401 anyway (e.g. the token was
revoked, or the account's clock ran ahead of ours).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import HubSpotSettings
from connectors.errors import AuthError

REFRESH_MARGIN = 120.0  # renew this long before expiry (a tenth of the life if shorter)


@dataclass(frozen=True)
class Grant:
    access_token: str
    refresh_token: str | None
    expires_in: float


Fetch = Callable[[str], Grant]  # refresh token -> new grant (one HTTP call)


class TokenSource:
    def __init__(self, settings: HubSpotSettings, fetch: Fetch, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        a = settings.auth
        self.oauth = bool(a.client_id and a.client_secret and a.refresh_token)
        self._token = a.access_token
        self._refresh_token = a.refresh_token
        self._client_secret = a.client_secret
        self._renew_at: float | None = None  # unknown for a token given in the settings
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._retired: list[str] = []  # earlier access tokens, kept only to scrub them
        if not self.oauth and not self._token:
            raise ValueError("HubSpot settings need access_token, or client_id, client_secret "
                             "and refresh_token")

    def current(self) -> str:
        with self._lock:
            due = self._renew_at is not None and self._clock() >= self._renew_at
            if self.oauth and (self._token is None or due):
                self._refresh()
            if self._token is None:  # pragma: no cover - excluded by __init__
                raise AuthError("no HubSpot access token")
            return self._token

    def after_unauthorized(self, used: str) -> bool:
        """A call sent with `used` got a 401: may it be replayed with a new token?"""
        if not self.oauth:
            return False
        with self._lock:
            if self._token != used:  # another thread has refreshed meanwhile
                return True
            self._refresh()
            return True

    def secrets(self) -> tuple[str | None, ...]:
        """Values that must never appear in a message or log line."""
        with self._lock:
            return (self._token, self._refresh_token, self._client_secret, *self._retired)

    def _refresh(self) -> None:
        if self._refresh_token is None:  # pragma: no cover - oauth implies one
            raise AuthError("no OAuth refresh token")
        grant = self._fetch(self._refresh_token)
        if self._token:
            self._retired = [*self._retired[-3:], self._token]
        self._token = grant.access_token
        if grant.refresh_token:
            self._refresh_token = grant.refresh_token
        life = max(0.0, grant.expires_in)
        self._renew_at = self._clock() + life - min(REFRESH_MARGIN, life / 10)
