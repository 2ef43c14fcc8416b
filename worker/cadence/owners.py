"""The owner a deal's tasks go to, with its zone and working days (holidays, days away)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from worker.cadence.calendar import WorkCalendar, work_calendar, zone
from worker.settings.connections import OwnerOverride
from worker.settings.models import Defaults
from worker.settings.values import supported_countries


@dataclass(frozen=True, slots=True)
class OwnerContext:
    owner_id: str
    zone_name: str
    calendar: WorkCalendar
    fallback: bool
    zone_source: str = "defaults.timezone"  # which setting gave the zone (for plan --diff)
    holidays: str = ""  # the public holidays' country[-subdivision]
    holidays_source: str = "defaults.calendar"
    away: tuple[tuple[date, date], ...] = ()  # the owner override's days away (from, to)


def resolve_owner(defaults: Defaults, override: OwnerOverride | None, owner_id: str,
                  zone_hint: str | None, country: str | None, subdivision: str | None,
                  fallback: bool) -> OwnerContext:
    """An owner's zone and working days: the override, else the CRM owner's, else defaults."""
    zone_source, holidays_source = "defaults.timezone", "defaults.calendar"
    if override and override.timezone:
        zone_name, zone_source = override.timezone, "owner override timezone"
    elif _valid_zone(zone_hint):
        zone_name, zone_source = str(zone_hint), "CRM owner time zone"
    else:
        zone_name = defaults.timezone
    if override and override.country:
        country, subdivision = override.country, override.subdivision
        holidays_source = "owner override country/subdivision"
    elif country:
        holidays_source = "CRM owner country"
    country = (country or "").upper() or defaults.calendar.country
    subdivisions = supported_countries().get(country)
    if subdivisions is None:
        country, subdivision = defaults.calendar.country, defaults.calendar.subdivision
        holidays_source = "defaults.calendar"
    elif country == defaults.calendar.country and subdivision is None:
        subdivision = defaults.calendar.subdivision
    elif subdivision is not None and subdivision.upper() not in subdivisions:
        subdivision = None
    away = tuple((a.from_, a.to) for a in override.away) if override else ()
    calendar = work_calendar(country, subdivision, defaults.calendar.weekend,
                             defaults.calendar.extra_holidays, away)
    holidays = f"{country}-{subdivision.upper()}" if subdivision else country
    return OwnerContext(owner_id, zone_name, calendar, fallback, zone_source, holidays,
                        holidays_source, away)


def _valid_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        zone(name)
    except (KeyError, ValueError, OSError):
        return None
    return name


def team_member(deal_id: str, team: Sequence[str]) -> str | None:
    """Rendezvous hashing: the member with the highest hash of (deal id, member). Even over
    the team, and stable: a deal changes member only when its member leaves the team (then
    only that member's deals move, spread over the others)."""
    if len(team) <= 1:
        return team[0] if team else None
    return max(team, key=lambda member: (hashlib.blake2b(
        f"{deal_id}\x00{member}".encode(), digest_size=8).digest(), member))
