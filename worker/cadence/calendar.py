"""Working days per owner: weekends, public holidays (observed days too) and company days off."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import holidays

# Some countries' holiday data ends in a given year; past it only weekends count. Planning is
# bounded by the horizon (years, not decades), so the warning is noise in the logs.
warnings.filterwarnings("ignore", message="Requested Holidays are available only",
                        category=UserWarning)

WEEKDAY_NUMBERS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class WorkCalendar:
    """`next_working(day)`: the first working day on or after `day` (memoised, thread-safe)."""

    def __init__(self, country: str, subdivision: str | None, weekend: Iterable[str],
                 extra_holidays: Iterable[date] = (), away: Iterable[date] = ()) -> None:
        self.country = country
        self.subdivision = subdivision
        self._weekend = frozenset(WEEKDAY_NUMBERS[d] for d in weekend)
        self._away = frozenset(away)
        self._extra = frozenset(extra_holidays) | self._away
        self._holidays = holidays.country_holidays(country, subdiv=subdivision)
        self._next: dict[date, date] = {}
        self._lock = threading.Lock()

    def is_working(self, day: date) -> bool:
        with self._lock:
            return self._is_working(day)

    def _is_working(self, day: date) -> bool:
        return day.weekday() not in self._weekend and day not in self._extra \
            and day not in self._holidays

    def next_working(self, day: date) -> date:
        found = self._next.get(day)
        if found is not None:
            return found
        with self._lock:
            probe = day
            while not self._is_working(probe):
                probe += timedelta(days=1)
            self._next[day] = probe
        return probe

    def holiday_name(self, day: date) -> str | None:
        with self._lock:
            name = self._holidays.get(day)
        if name:
            return str(name)
        if day in self._away:
            return "owner away"
        return "company day off" if day in self._extra else None


@cache
def work_calendar(country: str, subdivision: str | None, weekend: tuple[str, ...],
                  extra_holidays: tuple[date, ...] = (),
                  away: tuple[tuple[date, date], ...] = ()) -> WorkCalendar:
    """The shared calendar of these settings; `away` are an owner's (from, to) periods."""
    days = [date.fromordinal(n) for start, end in away
            for n in range(start.toordinal(), end.toordinal() + 1)]
    return WorkCalendar(country, subdivision, weekend, extra_holidays, days)


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
