"""HubSpot's rate limits (reference §0, §5): a 10-second rolling burst limit per principal,
a separate per-second bucket for search (which is exempt from the burst limit) and a daily
limit for private-app tokens (OAuth apps have none). Windows run on real (monotonic) time;
the day comes from the emulator clock, so moving the clock past midnight resets it."""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sandbox.hubspot.errors import rate_limit_body
from sandbox.messages import Response

SEARCH_WINDOW = 1.0


@dataclass
class Limits:
    burst: int = 100
    burst_window_seconds: float = 10.0
    search_per_second: int = 5
    daily: int = 250_000
    retry_after: float | None = None  # seconds for a Retry-After header on 429 (None: no header)

    def update(self, data: dict[str, Any]) -> None:
        """Apply `{"burst": N, "search_per_second": N, "daily": N, "retry_after": s|null,
        "burst_window_seconds": s}`; raises ValueError on unknown or bad fields."""
        unknown = set(data) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown limit fields: {sorted(unknown)}")
        for key, value in data.items():
            if key == "retry_after":
                self.retry_after = None if value is None else float(value)
            elif key == "burst_window_seconds":
                self.burst_window_seconds = float(value)
            else:
                setattr(self, key, int(value))


def portal_of(principal: str) -> int:
    """A stable made-up portal (hub) id per principal."""
    return 10_000_000 + zlib.crc32(principal.encode()) % 90_000_000


class RateLimiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._burst: dict[str, deque[float]] = {}
        self._search: dict[str, deque[float]] = {}
        self._daily: dict[tuple[str, date], int] = {}

    def reset(self) -> None:
        with self._lock:
            self._burst.clear()
            self._search.clear()
            self._daily.clear()

    @staticmethod
    def _window(store: dict[str, deque[float]], principal: str, span: float, now: float
                ) -> deque[float]:
        hits = store.setdefault(principal, deque())
        while hits and hits[0] <= now - span:
            hits.popleft()
        return hits

    def admit(self, principal: str, *, search: bool, daily: bool, today: date) -> str | None:
        """Count one call; return the policy name that refuses it, or None."""
        now = time.monotonic()
        limits = self.limits
        with self._lock:
            if daily and self._daily.get((principal, today), 0) >= limits.daily:
                return "DAILY"
            if search:
                hits = self._window(self._search, principal, SEARCH_WINDOW, now)
                if len(hits) >= limits.search_per_second:
                    return "SECONDLY"
            else:
                hits = self._window(self._burst, principal, limits.burst_window_seconds, now)
                if len(hits) >= limits.burst:
                    return "TEN_SECONDLY_ROLLING"
            hits.append(now)
            if daily:
                self._daily[(principal, today)] = self._daily.get((principal, today), 0) + 1
        return None

    def headers(self, principal: str, *, daily: bool, today: date) -> dict[str, str]:
        """`X-HubSpot-RateLimit-*` as they stand after this call."""
        limits = self.limits
        with self._lock:
            hits = self._window(self._burst, principal, limits.burst_window_seconds,
                                time.monotonic())
            out = {"X-HubSpot-RateLimit-Max": str(limits.burst),
                   "X-HubSpot-RateLimit-Remaining": str(max(0, limits.burst - len(hits))),
                   "X-HubSpot-RateLimit-Interval-Milliseconds":
                       str(int(limits.burst_window_seconds * 1000))}
            if daily:
                used = self._daily.get((principal, today), 0)
                out["X-HubSpot-RateLimit-Daily"] = str(limits.daily)
                out["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, limits.daily - used))
        return out

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {"daily": {f"{p}@{d.isoformat()}": n for (p, d), n in self._daily.items()}}

    def rejection(self, principal: str, policy: str, headers: dict[str, str]) -> Response:
        """The 429 HubSpot sends for `policy`, with an optional Retry-After."""
        portal = portal_of(principal)
        group = {"TEN_SECONDLY_ROLLING": f"publicapi:private-app-api-calls-ten-secondly:{portal}",
                 "SECONDLY": f"publicapi:crm-search-api-calls-secondly:{portal}",
                 "DAILY": f"publicapi:private-app-api-calls-daily:{portal}"}[policy]
        extra = dict(headers)
        if self.limits.retry_after is not None:
            # whole seconds: urllib3 rejects a fractional Retry-After as an invalid header
            extra["Retry-After"] = str(math.ceil(self.limits.retry_after))
        return Response.json(429, rate_limit_body(policy, group), extra)
