"""Durations and intervals: parsing, calendar arithmetic, month-end clamping."""

from __future__ import annotations

from datetime import date

import pytest

from worker.settings.durations import Duration, add_months, parse_interval


@pytest.mark.parametrize(("text", "months", "days"), [
    ("0d", 0, 0), ("14d", 0, 14), ("4w", 0, 28), ("1mo", 1, 0), ("3y", 36, 0),
    ("-180d", 0, -180), ("-6mo", -6, 0), ("1y6mo", 18, 0), ("2w3d", 0, 17), (" 5d ", 0, 5),
])
def test_durations_parse_into_months_and_days(text: str, months: int, days: int) -> None:
    """Years and months are calendar months; weeks and days are days."""
    assert Duration.parse(text) == Duration(months, days)


@pytest.mark.parametrize("text", ["", "d", "7days", "1.5d", "7", "1m", "+3d", "3 y 2"])
def test_bad_durations_are_refused_with_the_units_named(text: str) -> None:
    """A bad duration names the value and the units that exist."""
    with pytest.raises(ValueError, match="mo months"):
        Duration.parse(text)


@pytest.mark.parametrize(("start", "months", "expected"), [
    (date(2027, 1, 31), 1, date(2027, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),
    (date(2027, 1, 31), 2, date(2027, 3, 31)),
    (date(2027, 10, 31), 6, date(2028, 4, 30)),
    (date(2028, 2, 29), 12, date(2029, 2, 28)),
    (date(2027, 12, 15), 1, date(2028, 1, 15)),
    (date(2027, 3, 31), -1, date(2027, 2, 28)),
])
def test_months_clamp_to_the_end_of_the_target_month(start: date, months: int,
                                                     expected: date) -> None:
    """Jan 31 + 1mo is the last day of February, never March 3."""
    assert add_months(start, months) == expected


def test_months_apply_before_days_as_one_offset() -> None:
    """1mo + 3d from Jan 31 is Feb 28 + 3 days, the vectors' rule."""
    assert Duration(1, 3).add_to(date(2027, 1, 31)) == date(2027, 3, 3)


def test_repeated_month_steps_are_computed_from_the_start() -> None:
    """Jan 31 + k months never drifts to the 28th after February."""
    every = Duration.parse("1mo")
    got = [every.times(k).add_to(date(2027, 1, 31)) for k in range(4)]
    assert got == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]


@pytest.mark.parametrize(("text", "shown"), [("14d", "2w"), ("15d", "15d"), ("18mo", "1y6mo"),
                                             ("-180d", "-180d"), ("0d", "0d"), ("3y", "3y")])
def test_durations_print_back_in_config_syntax(text: str, shown: str) -> None:
    """str() gives a value the config accepts (used by the JSON schema and docs)."""
    assert str(Duration.parse(text)) == shown
    assert Duration.parse(str(Duration.parse(text))) == Duration.parse(text)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                               ("1d", 86400), ("0.5s", 0.5)])
def test_intervals_parse_to_seconds(text: str, seconds: float) -> None:
    """Clock intervals use s, m, h, d."""
    assert parse_interval(text) == seconds


def test_bad_interval_is_refused() -> None:
    """`5 minutes` is not an interval."""
    with pytest.raises(ValueError, match="not an interval"):
        parse_interval("5 minutes")
