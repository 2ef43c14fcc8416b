"""Calendar durations (`14d`, `4w`, `1mo`, `3y`, `-180d`, `1y6mo`) and clock intervals (`5m`;
defined in `connectors.settings`, where a CRM call's timeout is one).

A `Duration` is a pair (months, days): years and months are calendar months, clamped to the
end of the month (Jan 31 + 1mo = Feb 28/29); weeks and days are days. Adding one applies the
months first, then the days, as ONE offset from the start date (the plan vectors pin this).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from connectors.settings import INTERVAL_PATTERN, IntervalField, parse_interval

__all__ = ["INTERVAL_PATTERN", "Duration", "DurationField", "IntervalField", "add_months",
           "parse_interval"]

_PART = re.compile(r"(\d+)(mo|y|w|d)")
_DURATION = re.compile(r"^-?(\d+(mo|y|w|d))+$")
DURATION_PATTERN = r"^-?([0-9]+(mo|y|w|d))+$"


def add_months(day: date, months: int) -> date:
    """`day` moved by whole calendar months, clamped to the last day of the target month."""
    if months == 0:
        return day
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True, slots=True)
class Duration:
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        raw = text.strip().replace(" ", "")
        if not _DURATION.match(raw):
            raise ValueError(
                f"{text!r} is not a duration (expected a number and a unit: d days, w weeks, "
                "mo months, y years, e.g. 14d, 4w, 1mo, 3y, -180d)"
            )
        sign = -1 if raw.startswith("-") else 1
        months = days = 0
        for number, unit in _PART.findall(raw):
            n = int(number)
            if unit == "y":
                months += 12 * n
            elif unit == "mo":
                months += n
            elif unit == "w":
                days += 7 * n
            else:
                days += n
        return cls(sign * months, sign * days)

    def add_to(self, day: date) -> date:
        if self.months:
            day = add_months(day, self.months)
        return day + timedelta(days=self.days) if self.days else day

    def subtract_from(self, day: date) -> date:
        return (-self).add_to(day)

    def times(self, k: int) -> Duration:
        return Duration(self.months * k, self.days * k)

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.months + other.months, self.days + other.days)

    def __neg__(self) -> Duration:
        return Duration(-self.months, -self.days)

    @property
    def is_zero(self) -> bool:
        return self.months == 0 and self.days == 0

    @property
    def approx_days(self) -> float:
        return self.months * 30.436875 + self.days

    def __str__(self) -> str:
        if self.is_zero:
            return "0d"
        sign = "-" if (self.months < 0 or (self.months == 0 and self.days < 0)) else ""
        months, days = abs(self.months), abs(self.days)
        parts = []
        if months:
            years, rest = divmod(months, 12)
            parts += [f"{years}y"] if years else []
            parts += [f"{rest}mo"] if rest else []
        if days:
            parts.append(f"{days // 7}w" if days % 7 == 0 else f"{days}d")
        return sign + "".join(parts)


def _parse_duration(value: Any) -> Any:
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        return Duration.parse(value)
    raise ValueError("expected a duration such as 14d, 4w, 1mo or 3y")


DurationField = Annotated[
    Duration,
    BeforeValidator(_parse_duration),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN,
                    "description": "d days, w weeks, mo months, y years; e.g. 14d, 4w, 1mo, 3y"}),
]


def non_negative(value: Duration) -> Duration:
    if value.months < 0 or value.days < 0:
        raise ValueError(f"{value} is negative (expected 0d or more)")
    return value


def positive(value: Duration) -> Duration:
    if value.months < 0 or value.days < 0 or value.is_zero:
        raise ValueError(f"{value} must be more than 0d")
    return value


NonNegativeDuration = Annotated[DurationField, AfterValidator(non_negative)]
PositiveDuration = Annotated[DurationField, AfterValidator(positive)]
