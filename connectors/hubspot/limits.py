"""Client-side rate limiting and the daily budget (reference §0 numbers, §5 headers).

HubSpot counts a rolling 10-second burst window per app (100 calls by default) and, apart
from it, search at 5 calls per second per account; the daily limit is shared by every app of
the account. winback stays under the windows on its own so that a 429 is an accident, not
the way limits are found: one `Limiter` per connector, shared by all its threads.

A call is stamped when its answer arrives: HubSpot saw the request no later than that, so
spacing stamps by the window keeps the server's count under the limit whatever the latency.
A `Retry-After` pauses every call of the connector (HubSpot's window is per account, not per
endpoint).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from connectors.base import ApiUsage
from connectors.errors import BudgetExhausted

BURST_SPAN = 10.0  # seconds; HubSpot's ten-secondly rolling window
SEARCH_SPAN = 1.0
BURST_SHARE = 0.97  # the burst limit is per app (reference §0); a little slack for clock edges
EDGE = 0.05  # seconds added to each window for clock granularity


class Window:
    """At most `limit` calls in any `span` seconds (calls in flight count as just made)."""

    def __init__(self, limit: int, span: float) -> None:
        self.limit = max(1, limit)
        self.span = span
        self.stamps: deque[float] = deque()
        self.in_flight = 0

    def delay(self, now: float) -> float:
        """Seconds to wait before one more call may start (0: now)."""
        while self.stamps and self.stamps[0] <= now - self.span:
            self.stamps.popleft()
        if len(self.stamps) + self.in_flight < self.limit:
            return 0.0
        if self.stamps:  # the oldest stamp leaving the window frees a place
            return max(0.001, self.stamps[0] + self.span - now)
        return 0.01  # only calls in flight: a finishing one notifies the waiters


class Limiter:
    def __init__(self, burst_limit: int, search_per_second: int, *,
                 clock: Callable[[], float] = time.monotonic,
                 burst_span: float = BURST_SPAN, search_span: float = SEARCH_SPAN) -> None:
        self.burst = Window(math.floor(burst_limit * BURST_SHARE), burst_span + EDGE)
        self.search = Window(search_per_second, search_span + EDGE)
        self._clock = clock
        self._cond = threading.Condition()
        self._paused_until = 0.0

    @contextmanager
    def slot(self, *, search: bool) -> Iterator[None]:
        """Hold one call's place in its window for the length of the call."""
        window = self.search if search else self.burst
        with self._cond:
            while True:
                now = self._clock()
                wait = max(self._paused_until - now, window.delay(now))
                if wait <= 0:
                    window.in_flight += 1
                    break
                self._cond.wait(timeout=wait)
        try:
            yield
        finally:
            with self._cond:
                window.in_flight -= 1
                window.stamps.append(self._clock())
                self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """No call of this connector starts within `seconds` (a server's Retry-After)."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class DailyBudget:
    """The daily limit as HubSpot last reported it, and the share of it winback may use.

    Search answers carry no rate-limit headers (reference §5), so calls made since the last
    header are added to the reported use."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._used = 0
        self._unseen = 0

    def observe(self, headers: Mapping[str, str] | None) -> None:
        values = {k.lower(): v for k, v in (headers or {}).items()}
        daily = values.get("x-hubspot-ratelimit-daily")
        remaining = values.get("x-hubspot-ratelimit-daily-remaining")
        with self._lock:
            if daily is None or remaining is None:
                self._unseen += 1
                return
            try:
                limit, left = int(daily), int(remaining)
            except ValueError:
                return
            self._limit, self._used, self._unseen = limit, max(0, limit - left), 0

    def usage(self) -> ApiUsage | None:
        with self._lock:
            return None if self._limit is None else ApiUsage(self._used, self._limit)

    def check(self, *, connection: str, endpoint: str) -> None:
        """Raise BudgetExhausted once winback's share of the daily limit is used."""
        with self._lock:
            if self._limit is None:
                return
            used, allowed = self._used + self._unseen, self._limit * self.share
            limit = self._limit
        if used >= allowed:
            raise BudgetExhausted(
                f"{used} of {limit} daily API calls used; winback may use "
                f"{self.share:.0%} ({math.floor(allowed)})",
                connection=connection, endpoint=endpoint, code="BUDGET_SHARE")
