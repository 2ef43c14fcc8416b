"""A deal's plan fingerprint: a hash of everything the planner reads from the configuration to
plan that deal, so that a rule edit re-plans exactly the deals it affects.

What a deal's plan reads, given its cadence and its CRM owner's (id, active, time zone,
country, subdivision):
- which cadence matches: the `when` tests of that cadence and of every cadence before it;
- the cadence itself: its steps (dates, channel, priority, templates) and horizon;
- the owner its tasks go to (the CRM owner, or `fallback_owner` when that one is inactive or
  missing), that owner's time zone and public holidays (an `owners:` override, the CRM owner,
  or `defaults`), the weekend and extra holidays;
- `defaults.reminder_time`, `lead_time`, `grace` and (unless the cadence sets one) `horizon`;
- the owner's days `away` (override), its daily cap (`max_tasks_per_owner_per_day` or an
  override's `max_tasks_per_day`) and `stop.on_meeting`, only when set (not the default), so
  that a configuration without them keeps its fingerprints;
- a deal that goes to a fallback team (a list of two or more ids): every member's id, zone,
  holidays, days away and cap, so that the fingerprint does not depend on which member the
  deal goes to (the ledger compares fingerprints by CRM owner, not by deal).
- the cadence's `experiment` (id, weights, variants), only when it has one: an experiment
  edit re-plans the cadence's deals, each with the arm stored at its enrollment (the arm is
  an input of the plan, not of the fingerprint).
A deal no cadence matches reads only the `when` tests of every cadence.

The fingerprint covers values only; `sources` say which setting gave each value (for the
reasons `plan --diff` prints), and do not count: a value that stays the same re-plans nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.models import Deal
from worker.settings.models import Config

if TYPE_CHECKING:
    from worker.cadence.engine import OwnerContext

# A CRM owner as planning sees it: (id, active, time zone, country, subdivision).
OwnerInput = tuple[str, bool, str | None, str | None, str | None]


def owner_input(deal: Deal) -> OwnerInput | None:
    owner = deal.owner
    if owner is None:
        return None
    return (owner.id, bool(owner.active), owner.timezone, owner.country, owner.subdivision)


def encode_owner(raw: OwnerInput | None) -> str | None:
    """The ledger's `enrollment.owner_input` text (compact JSON)."""
    return None if raw is None else json.dumps(list(raw), separators=(",", ":"))


def decode_owner(text: str | None) -> OwnerInput | None:
    if not text:
        return None
    owner_id, active, zone_name, country, subdivision = json.loads(text)
    return (str(owner_id), bool(active), zone_name, country, subdivision)


NEWER_STEP_KEYS = ("after", "max_wait", "skip_if")


def _cadence_inputs(dumped: dict[str, Any]) -> dict[str, Any]:
    """A cadence's dump without the activity keys its steps leave unset, so that a cadence
    that uses none of them keeps the fingerprint it had before they existed."""
    if dumped.get("experiment") is None:  # (off: fingerprints from before it stay valid)
        dumped.pop("experiment", None)
    for step in dumped.get("steps", []):
        for key in NEWER_STEP_KEYS:
            if step.get(key) is None:
                step.pop(key, None)
    return dumped


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class PlanInputs:
    fingerprint: str
    inputs: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def stored(self) -> dict[str, Any]:
        """What the ledger keeps under the fingerprint (`plan_input.inputs`)."""
        return {"inputs": self.inputs, "sources": self.sources}


class Fingerprints:
    """Plan inputs per (cadence, CRM owner), memoised: a sync has few distinct pairs."""

    def __init__(self, config: Config,
                 owner_context: Callable[[OwnerInput | None], OwnerContext | None],
                 team: Callable[[OwnerInput | None], tuple[OwnerContext, ...] | None]
                 = lambda raw: None,
                 daily_cap: Callable[[str], int | None] = lambda owner_id: None) -> None:
        self._owner_context = owner_context
        self._team = team
        self._daily_cap = daily_cap
        when = [[c.id, {k: m.model_dump(mode="json", by_alias=True, exclude_none=True)
                        for k, m in c.when.items()}] for c in config.cadences]
        self._match = {c.id: when[:i + 1] for i, c in enumerate(config.cadences)}
        self._all_match = when
        self._cadences = {c.id: _cadence_inputs(c.model_dump(
            mode="json", by_alias=True, exclude={"description", "when"}))
            for c in config.cadences}
        self._on_meeting = config.stop.on_meeting
        d = config.defaults
        dumped = d.model_dump(mode="json")
        self._defaults = {
            "weekend": dumped["calendar"]["weekend"],
            "extra_holidays": dumped["calendar"]["extra_holidays"],
            "reminder_time": d.reminder_time.isoformat(
                timespec="minutes" if not d.reminder_time.second else "auto"),
            "lead_time": dumped["lead_time"],
            "grace": dumped["grace"],
        }
        self._default_horizon = dumped["horizon"]
        self._cache: dict[tuple[str | None, OwnerInput | None], PlanInputs] = {}

    def of(self, cadence_id: str | None, raw: OwnerInput | None) -> PlanInputs:
        found = self._cache.get((cadence_id, raw))
        if found is None:
            found = self._build(cadence_id, raw)
            self._cache[(cadence_id, raw)] = found
        return found

    def _build(self, cadence_id: str | None, raw: OwnerInput | None) -> PlanInputs:
        if cadence_id is None:
            inputs: dict[str, Any] = {"match": self._all_match}
            return PlanInputs(digest(inputs), inputs)
        if cadence_id not in self._cadences:
            return PlanInputs("removed", {})
        inputs = {"match": self._match[cadence_id], "cadence": self._cadences[cadence_id]}
        sources: dict[str, str] = {}
        team = self._team(raw)
        if team is not None:
            return self._team_inputs(cadence_id, inputs, team)
        owner = self._owner_context(raw)
        if owner is None:
            inputs["owner"] = None
            return PlanInputs(digest(inputs), inputs, sources)
        horizon = self._cadences[cadence_id].get("horizon")
        inputs.update(self._defaults, owner=owner.owner_id, timezone=owner.zone_name,
                      holidays=owner.holidays,
                      horizon=horizon if horizon is not None else self._default_horizon)
        if owner.away:  # (absent when empty: fingerprints from before `away` stay valid)
            inputs["away"] = [[a.isoformat(), b.isoformat()] for a, b in owner.away]
            sources["away"] = "owner override away"
        cap = self._daily_cap(owner.owner_id)
        if cap is not None:
            inputs["daily_cap"] = cap
            sources["daily_cap"] = "max_tasks_per_owner_per_day"
        if self._on_meeting != "notify":
            inputs["on_meeting"] = self._on_meeting
            sources["on_meeting"] = "stop.on_meeting"
        sources.update(
            owner="fallback_owner" if owner.fallback else "CRM owner",
            timezone=owner.zone_source, holidays=owner.holidays_source,
            horizon=f"cadence {cadence_id} horizon" if horizon is not None
            else "defaults.horizon")
        return PlanInputs(digest(inputs), inputs, sources)

    def _team_inputs(self, cadence_id: str, inputs: dict[str, Any],
                     team: tuple[OwnerContext, ...]) -> PlanInputs:
        horizon = self._cadences[cadence_id].get("horizon")
        inputs.update(self._defaults, owner=[o.owner_id for o in team],
                      timezone=[o.zone_name for o in team],
                      holidays=[o.holidays for o in team],
                      horizon=horizon if horizon is not None else self._default_horizon)
        if any(o.away for o in team):
            inputs["away"] = [[[a.isoformat(), b.isoformat()] for a, b in o.away] for o in team]
        caps = [self._daily_cap(o.owner_id) for o in team]
        if any(c is not None for c in caps):
            inputs["daily_cap"] = caps
        if self._on_meeting != "notify":
            inputs["on_meeting"] = self._on_meeting
        sources = {"owner": "fallback_owner (a team)", "timezone": "fallback_owner (a team)",
                   "holidays": "fallback_owner (a team)",
                   "horizon": f"cadence {cadence_id} horizon" if horizon is not None
                   else "defaults.horizon"}
        return PlanInputs(digest(inputs), inputs, sources)
