"""Single-value types of the configuration: time zones, countries, regexes, clock times,
weekdays and the daily cap, each with the error a user sees for a bad value."""

from __future__ import annotations

import re
from datetime import time
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import AfterValidator, BeforeValidator, Field

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name such as America/New_York)"
        ) from exc
    return name


@cache
def supported_countries() -> dict[str, tuple[str, ...]]:
    return {code: tuple(subdivs) for code, subdivs in holidays.list_supported_countries().items()}


def _check_country(code: str) -> str:
    if code.upper() not in supported_countries():
        raise ValueError(
            f"unknown or unsupported country {code!r} (expected an ISO 3166 alpha-2 code with "
            "public-holiday data, such as US, GB, DE, FR, AU)"
        )
    return code.upper()


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return pattern


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
CountryCode = Annotated[str, AfterValidator(_check_country)]
Regex = Annotated[str, AfterValidator(_check_regex)]


DailyCap = Annotated[int, Field(ge=1, le=10_000)]


_HH_MM = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def _hh_mm(value: Any) -> Any:
    """A time of day as `HH:MM` text only: YAML's `9` (pydantic's 9 seconds) or `9am` is an
    error that says so; `9:30` is read as 09:30."""
    if isinstance(value, time):
        return value
    match = _HH_MM.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a time of day (expected HH:MM, 24-hour, "
                         "e.g. \"09:00\" or \"14:30\")")
    return time(int(match.group(1)), int(match.group(2)))


ClockTime = Annotated[time, BeforeValidator(_hh_mm)]
