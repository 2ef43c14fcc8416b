"""Property tests of the planner over random deals, zones, countries and close dates."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.models import Contact, Deal, Owner
from tests.unit.planning import default_config, examples
from worker.cadence.engine import Planner

ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin",
         "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Tokyo",
         "Pacific/Auckland", "Pacific/Kiritimati", "America/St_Johns", "America/Santiago",
         "Pacific/Apia", "Africa/Cairo", "UTC"]
COUNTRIES = ["US", "GB", "DE", "FR", "AU", "JP", "IN", "BR", "CA", "NZ", "SG", "ES", "IT", "MX",
             "ZA"]
SPECIAL_DAYS = [date(2027, 3, 14), date(2027, 11, 7), date(2027, 3, 28), date(2027, 10, 31),
                date(2028, 2, 29), date(2024, 2, 29), date(2027, 12, 31), date(2028, 1, 1),
                date(2027, 12, 24), date(2030, 12, 31), date(2026, 4, 5), date(2032, 2, 29)]

PLANNER = Planner(default_config(), "acme-hs")


@st.composite
def deals(draw: st.DrawFn) -> tuple[Deal, datetime]:
    day = draw(st.one_of(st.sampled_from(SPECIAL_DAYS),
                         st.dates(date(2020, 1, 1), date(2040, 12, 31))))
    zone = draw(st.sampled_from(ZONES))
    moment = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(zone)) + timedelta(
        minutes=draw(st.integers(0, 24 * 60 - 1)))
    closed_at: date | datetime = draw(st.sampled_from([day, moment.astimezone(UTC)]))
    contacts = tuple(Contact(id=f"K{i}", opted_out=draw(st.booleans()))
                     for i in range(draw(st.integers(0, 3))))
    reason = draw(st.sampled_from(["Lost to competitor", "No decision", "Price", "Timing", None]))
    contract_end = draw(st.one_of(st.none(), st.dates(day, day + timedelta(days=1500))))
    deal = Deal(id=draw(st.text("abcdef0123456789", min_size=1, max_size=18)), name="D",
                account_name="A", closed_at=closed_at, loss_reason=reason,
                contract_end=contract_end, contacts=contacts,
                owner=Owner(id="U1", timezone=zone, country=draw(st.sampled_from(COUNTRIES))))
    now = moment + timedelta(days=draw(st.integers(0, 40)), hours=draw(st.integers(0, 23)))
    return deal, now.astimezone(UTC)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deals())
def test_no_due_date_falls_on_a_weekend_or_holiday_of_the_owner(case: tuple[Deal, datetime]
                                                                ) -> None:
    """Every due date is a working day of the owner's country, on or after their today."""
    deal, now = case
    plan = PLANNER.plan(deal, now)
    assert deal.owner is not None and deal.owner.country is not None
    days_off = holidays.country_holidays(deal.owner.country)
    today = now.astimezone(ZoneInfo(str(deal.owner.timezone))).date()
    for task in plan.tasks:
        assert task.due_date.weekday() < 5, task
        assert task.due_date not in days_off, (task, days_off.get(task.due_date))
        assert task.due_date >= today
        assert today <= task.create_on <= task.due_date
        local = task.remind_at.astimezone(ZoneInfo(str(deal.owner.timezone)))
        assert local.date() == task.due_date


@settings(max_examples=examples(150), deadline=None)
@given(deals())
def test_keys_are_unique_and_stable(case: tuple[Deal, datetime]) -> None:
    """Keys are unique within a deal's plan and the same when the deal is planned again."""
    deal, now = case
    first = [t.key for t in PLANNER.plan(deal, now).tasks]
    assert len(first) == len(set(first))
    again = Planner(default_config(), "acme-hs")
    assert [t.key for t in again.plan(deal, now).tasks] == first


@settings(max_examples=40, deadline=None)
@given(deals(), st.sampled_from(["UTC", "Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu"]))
def test_plan_is_identical_under_a_different_host_time_zone(case: tuple[Deal, datetime],
                                                            host_zone: str) -> None:
    """Changing the process's TZ changes nothing in the plan."""
    deal, now = case
    before = PLANNER.plan(deal, now)
    saved = os.environ.get("TZ")
    os.environ["TZ"] = host_zone
    time.tzset()
    try:
        after = Planner(default_config(), "acme-hs").plan(deal, now)
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
    assert after == before


@settings(max_examples=examples(200), deadline=None)
@given(deals())
def test_competitor_track_keeps_four_touches_a_year_after_the_first(case: tuple[Deal, datetime]
                                                                   ) -> None:
    """Years 2 and 3 of the default competitor track each hold at least four touches."""
    deal, _ = case
    deal = deal.model_copy(update={"loss_reason": "Lost to competitor"})
    owner_zone = ZoneInfo(str(deal.owner.timezone)) if deal.owner else UTC
    closed = deal.closed_at
    day0 = closed.astimezone(owner_zone).date() if isinstance(closed, datetime) else closed
    assert isinstance(day0, date)
    plan = PLANNER.plan(deal, datetime.combine(day0, datetime.min.time(), tzinfo=owner_zone))
    assert plan.cadence == "lost-to-competitor"
    touches = sorted({t.due_date for t in plan.tasks})
    for year in (1, 2):
        start = _years_after(day0, year)
        end = _years_after(day0, year + 1)
        in_year = [d for d in touches if start <= d < end or (year == 2 and d == end)]
        assert len(in_year) >= 4, (year, in_year)


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # Feb 29
        return day.replace(year=day.year + years, day=28)
