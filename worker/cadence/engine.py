"""Deal x rules x calendar x now -> planned tasks. Pure: no I/O, no clock, no global state.

Pinned semantics (see docs/configuration.md and the plan vectors in tests):
- day 0 is the close date in the owner's time zone;
- an occurrence falls on base + (from + k x every) as ONE calendar offset (months first,
  clamped to the month's end, then days); `spread: N` puts touch k on
  DA + floor((DB - DA) x k / (N + 1)) days; `until` and `horizon` are inclusive and compare
  the date before the working-day shift;
- a date on a weekend or public holiday moves to the next working day;
- a step already late on the owner's local today: late by <= grace -> due the first working
  day on or after today, else skipped;
- create_on = max(due - lead_time, today); remind_at = due at reminder_time, owner's zone, UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any

from connectors.models import Channel, Deal, Priority
from worker.cadence.activity import DealActivity
from worker.cadence.arms import assign_arm
from worker.cadence.calendar import WorkCalendar, zone
from worker.cadence.capacity import CapItem, cap_plans
from worker.cadence.fingerprint import Fingerprints, OwnerInput, PlanInputs, owner_input
from worker.cadence.keys import task_key
from worker.cadence.match import compile_when, first_match
from worker.cadence.outcome import DealPlan, Skipped
from worker.cadence.owners import OwnerContext, resolve_owner, team_member
from worker.cadence.reactive import ReactivePlan
from worker.cadence.tasks import REBORN_CADENCE, PlannedTask, reminder_instant, start_of_day
from worker.settings import templates
from worker.settings.experiments import HOLDOUT
from worker.settings.models import Cadence, Config, Step

OPTED_OUT = "opted out in the CRM"
MAX_OCCURRENCES = 1000
SCHEDULE_CACHE = 50_000


# A deal's arm as the ledger stored it at enrollment: (experiment id, arm).
StoredArm = tuple[str, str]
# (step, occurrence, due date, reminder UTC, create on, create after UTC, date before the shift)
Slot = tuple[Step, int, date, datetime, date, datetime, date | None]
__all__ = ["DealPlan", "OwnerContext", "PlannedTask", "Planner", "Skipped"]


@dataclass(frozen=True, eq=False)
class StepRule:
    """A step compiled for scheduling; hashed by identity so the occurrence cache is cheap."""

    step: Step
    cadence_id: str

    def occurrences(self, base: date, horizon_date: date) -> tuple[tuple[int, date], ...]:
        return _occurrences(self, base, horizon_date)


@lru_cache(maxsize=200_000)
def _occurrences(rule: StepRule, base: date, horizon_date: date) -> tuple[tuple[int, date], ...]:
    step = rule.step
    out: list[tuple[int, date]] = []
    if step.at is not None:
        out.append((0, step.at.add_to(base)))
    elif step.every is not None and step.until is not None:
        last = step.until.add_to(base)
        for k in range(MAX_OCCURRENCES):
            day = (step.start + step.every.times(k)).add_to(base)
            if day > last or day > horizon_date:
                break
            out.append((k, day))
    elif step.spread is not None and step.until is not None:
        first, last = step.start.add_to(base), step.until.add_to(base)
        span = (last - first).days
        out.extend((k, date.fromordinal(first.toordinal() + span * k // (step.spread + 1)))
                   for k in range(1, step.spread + 1))
    return tuple((k, day) for k, day in out if day <= horizon_date)


def _start(today: date, resume: date | None) -> date:
    """The first day a task may be created: today, or a pause's end if it is later. A task due
    before the pause's end is judged late as of that end (grace) even when the plan is made
    after it (a tick that came days after the pause ended must not skip what the pause held),
    and is then due on the first working day from this start: never a day already past."""
    return today if resume is None or resume < today else resume


def default_subject(step: Step) -> str:
    return step.id.replace("-", " ").replace("_", " ").capitalize() + ": {{ deal.name }}"


class Planner:
    """Plans deals for one connection of a configuration."""

    def __init__(self, config: Config, connection: str | None = None) -> None:
        self.config = config
        conn = config.connection(connection)
        if connection is not None and conn is None:
            raise KeyError(f"no connection named {connection!r} in the configuration")
        self.connection = conn.name if conn else "default"
        self.fallback_owners: tuple[str, ...] = conn.fallback_owners if conn else ()
        self.overrides = dict(conn.owners) if conn else {}
        self._conn = conn
        self._when = [compile_when(c) for c in config.cadences]
        # An experiment's variants: the cadence with the arm's steps (same id, same keys).
        self._arms = {(c.id, name): c.model_copy(update={"steps": c.arm_steps(name)})
                      for c in config.cadences if c.experiment is not None
                      for name in c.experiment.variants}
        # Compiled steps per cadence object (a variant's are its own), by identity.
        self._rules = {id(c): tuple(StepRule(s, c.id) for s in c.steps)
                       for c in (*config.cadences, *self._arms.values())}
        self._cadences = {c.id: c for c in config.cadences}
        d = config.defaults
        self._horizon = d.horizon
        self._lead, self._grace, self._reminder = d.lead_time, d.grace, d.reminder_time
        self._lead_back = -self._lead
        self._late_reason = f"past due by more than grace ({self._grace})"
        self._per_stakeholder = {
            c.id: any(s.per == "stakeholder" for s in c.steps) for c in config.cadences}
        self._reactive = {c.id: any(s.after or s.skip_if for s in c.steps)
                          for c in config.cadences}
        self._has_contract_steps = {
            c.id: any(s.anchor == "contract_end" for s in c.steps) for c in config.cadences}
        self._owner_cache: dict[tuple[Any, ...], OwnerContext] = {}
        self._by_id: dict[str, OwnerContext] = {}
        self._caps: dict[str, int | None] = {}
        self._latest: dict[tuple[date, str, date | None], date] = {}
        self._schedules: dict[tuple[Any, ...], tuple[tuple[Slot, ...], tuple[Skipped, ...]]] = {}
        self._fingerprints = Fingerprints(config, self.owner_context_for, self.team_contexts,
                                          self.daily_cap)

    def cadence(self, cadence_id: str, arm: str | None = None) -> Cadence | None:
        """A cadence as written, or as an experiment's variant `arm` has it."""
        return self._arms.get((cadence_id, arm or "")) or self._cadences.get(cadence_id)

    def rules(self, cadence: Cadence) -> tuple[StepRule, ...]:
        return self._rules[id(cadence)]

    def arm(self, deal_id: str, cadence: Cadence, stored: StoredArm | None = None
            ) -> tuple[str, str] | None:
        """(experiment id, arm) of a deal planned with `cadence` (None: no experiment): the
        arm stored at its enrollment while the experiment id stays, else a new draw."""
        experiment = cadence.experiment
        if experiment is None:
            return None
        if stored is not None and stored[0] == experiment.id:
            return stored
        return experiment.id, assign_arm(self.connection, deal_id, experiment)

    def match(self, deal: Deal) -> Cadence | None:
        return first_match(self._when, deal)

    def needs_contacts(self, deal: Deal) -> bool:
        """Whether planning this deal reads its contacts (a `per: stakeholder` step)."""
        cadence = self.match(deal)
        return cadence is not None and self._per_stakeholder[cadence.id]

    # -- owners ---------------------------------------------------------------------------
    def create_after(self, deal: Deal, task: PlannedTask) -> datetime:
        """The UTC instant `task` becomes due for writing: the start of its create_on day in
        the owner's zone (UTC when the deal has no owner). Between midnight UTC and the
        owner's midnight the two calendars disagree on the date; this is the one rule."""
        owner = self.owner_context(deal)
        return start_of_day(task.create_on, owner.zone_name if owner is not None else None)

    @property
    def fallback_owner(self) -> str | None:
        """The first fallback owner (None: none); a team's member per deal: `fallback_for`."""
        return self.fallback_owners[0] if self.fallback_owners else None

    @fallback_owner.setter
    def fallback_owner(self, value: str | None) -> None:
        self.fallback_owners = (value,) if value else ()

    def fallback_for(self, deal_id: str, excluded: frozenset[str] = frozenset()) -> str | None:
        """The fallback owner of a deal: the only one, or a team's member chosen by
        `team_member` among those not `excluded` (None: none left)."""
        return team_member(deal_id, [o for o in self.fallback_owners if o not in excluded])

    def daily_cap(self, owner_id: str) -> int | None:
        """The owner's cap of winback tasks per day (None: no cap)."""
        if owner_id in self._caps:
            return self._caps[owner_id]
        cap = self.config.defaults.max_tasks_per_owner_per_day if self._conn is None \
            else self._conn.daily_cap(self.config.defaults, owner_id)
        self._caps[owner_id] = cap
        return cap

    @property
    def has_cap(self) -> bool:
        """Whether any owner of this connection has a daily cap."""
        conn = self._conn
        return self.config.defaults.max_tasks_per_owner_per_day is not None or (
            conn is not None and (conn.max_tasks_per_owner_per_day is not None or any(
                o.max_tasks_per_day is not None for o in conn.owners.values())))

    def owner_context(self, deal: Deal) -> OwnerContext | None:
        return self.owner_context_for(owner_input(deal), deal.id)

    def team_contexts(self, raw: OwnerInput | None) -> tuple[OwnerContext, ...] | None:
        """The contexts of a fallback team's members when `raw` goes to a team of two or
        more (None otherwise): what a fingerprint of such a deal covers."""
        if len(self.fallback_owners) < 2 or not (raw is None or not raw[1]):
            return None
        return tuple(self._resolved(o, None, None, None, True) for o in self.fallback_owners)

    def owner_context_for(self, raw: OwnerInput | None, deal_id: str = ""
                          ) -> OwnerContext | None:
        """The owner a deal's tasks go to, with its zone and holidays, from the CRM owner's
        (id, active, time zone, country, subdivision), the overrides and the fallback (a
        team's member by the deal's id)."""
        fallback = raw is None or not raw[1]
        member = self.fallback_for(deal_id) if fallback else None
        if member is not None:
            owner_id, zone_hint, country, subdivision = member, None, None, None
        elif raw is None:
            return None
        else:
            fallback = False
            owner_id, _, zone_hint, country, subdivision = raw
        return self._resolved(owner_id, zone_hint, country, subdivision, fallback)

    def _resolved(self, owner_id: str, zone_hint: str | None, country: str | None,
                  subdivision: str | None, fallback: bool) -> OwnerContext:
        cache_key = (owner_id, zone_hint, country, subdivision, fallback)
        found = self._owner_cache.get(cache_key)
        if found is None:
            found = resolve_owner(self.config.defaults, self.overrides.get(owner_id), owner_id,
                                  zone_hint, country, subdivision, fallback)
            self._owner_cache[cache_key] = found
        return found

    # -- planning -------------------------------------------------------------------------
    def plan_inputs(self, cadence_id: str | None, raw: OwnerInput | None) -> PlanInputs:
        """Everything planning a deal of this cadence (None: no cadence matched) and CRM owner
        reads from the configuration, and its fingerprint (the ledger's rule_version)."""
        return self._fingerprints.of(cadence_id, raw)

    def cap_latest(self, task: PlannedTask, day0: date | None) -> date:
        """The last day the daily cap may move a task to: the step's grace after its working
        due date (a late task's grace counts from its first due date), and the horizon."""
        owner = self._owner_calendar(task.owner_id)
        first = owner.next_working(task.moved_from) if task.moved_from is not None \
            and task.moved_from < task.due_date else task.due_date
        cache_key = (first, task.cadence_id, day0)
        latest = self._latest.get(cache_key)
        if latest is None:
            latest = self._grace.add_to(first)
            cadence = self._cadences.get(task.cadence_id)
            if cadence is not None and day0 is not None:
                latest = min(latest, self.horizon_date(cadence, day0))
            if len(self._latest) >= SCHEDULE_CACHE:
                self._latest.clear()
            self._latest[cache_key] = latest
        return max(latest, task.due_date)

    def _owner_calendar(self, owner_id: str) -> WorkCalendar:
        return self.owner_by_id(owner_id).calendar

    @property
    def reminder_time(self) -> time:
        """`defaults.reminder_time`: the local time of a task's reminder on its due day."""
        return self._reminder

    def owner_by_id(self, owner_id: str) -> OwnerContext:
        """The context an owner id was planned with (its zone and calendar), or the one its
        override and defaults give."""
        found = self._by_id.get(owner_id)
        if found is None:
            found = next((o for o in self._owner_cache.values() if o.owner_id == owner_id),
                         None) or self._resolved(owner_id, None, None, None, False)
            self._by_id[owner_id] = found
        return found

    def cap_item(self, task: PlannedTask, day0: date | None) -> CapItem:
        return CapItem(task.key, task.owner_id, task.priority, task.due_date,
                       self.cap_latest(task, day0))

    def apply_cap(self, plans: Sequence[DealPlan],
                  taken: Mapping[tuple[str, date], int] | None = None) -> list[DealPlan]:
        """The plans of many deals under the owners' daily caps (capacity.cap_plans)."""
        return cap_plans(self, plans, taken)

    def rule_version(self, cadence_id: str | None, deal: Deal) -> str:
        return self.plan_inputs(cadence_id, owner_input(deal)).fingerprint

    def plan(self, deal: Deal, now: datetime, *, cycle: int = 1,
             activity: DealActivity | None = None, arm: StoredArm | None = None) -> DealPlan:
        """Plan a deal. `cycle` counts losses of the same deal: a deal lost again after it was
        reborn starts a new cycle whose keys differ from the first one's. `activity` is what
        happened in the CRM (worker/cadence/activity.py); without it, `after` steps wait and
        no task is skipped for an activity. `arm`: the deal's experiment arm as stored at its
        enrollment (kept while the cadence's experiment id stays; else the deal is drawn)."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        if not deal.is_lost:
            return DealPlan(deal.id, None, None, None, reason="not closed-lost")
        cadence = self.match(deal)
        if cadence is None:
            return DealPlan(deal.id, None, None, None, reason="no cadence matches")
        drawn = self.arm(deal.id, cadence, arm)
        if drawn is None:
            return self._plan(deal, cadence, now, cycle, activity, holdout=False)
        plan = self._plan(deal, self.cadence(cadence.id, drawn[1]) or cadence, now, cycle,
                          activity, holdout=drawn[1] == HOLDOUT)
        return replace(plan, experiment=drawn[0], arm=drawn[1])

    def _plan(self, deal: Deal, cadence: Cadence, now: datetime, cycle: int,
              activity: DealActivity | None, *, holdout: bool) -> DealPlan:
        owner = self.owner_context(deal)
        if owner is None:
            return DealPlan(deal.id, cadence.id, None, None,
                            reason="deal has no owner and the connection has no fallback_owner")
        tz = zone(owner.zone_name)
        if deal.closed_at is None:
            return DealPlan(deal.id, cadence.id, None, owner.owner_id, reason="no close date")
        day0 = deal.closed_at.astimezone(tz).date() if isinstance(deal.closed_at, datetime) \
            else deal.closed_at
        today = now.astimezone(tz).date()
        key_cadence = cadence.id if cycle == 1 else f"{cadence.id}@{cycle}"
        if deal.opted_out:
            return DealPlan(deal.id, cadence.id, day0, owner.owner_id, reason=OPTED_OUT,
                            owner_fallback=owner.fallback, stop="opted_out")
        if holdout:  # enrolled and watched, no task; a meeting still stops it as reborn
            stop = ReactivePlan(self, deal, cadence, owner, day0, today, now, key_cadence,
                                activity).run() if activity is not None else None
            if stop is not None and stop.stop is not None:
                return stop
            return DealPlan(deal.id, cadence.id, day0, owner.owner_id,
                            owner_fallback=owner.fallback)
        if activity is not None or self._reactive[cadence.id] or deal.paused_until is not None:
            return ReactivePlan(self, deal, cadence, owner, day0, today, now, key_cadence,
                                activity).run()
        slots, skipped = self._schedule(cadence, day0, deal.contract_end, owner, today)
        stakeholders = tuple(c.id for c in deal.contacts if not c.opted_out)
        tasks: list[PlannedTask] = []
        for step, occurrence, due, remind_at, create_on, create_after, moved_from in slots:
            for contact_id in (stakeholders if step.per == "stakeholder" else (None,)):
                tasks.append(PlannedTask(
                    task_key(self.connection, deal.id, key_cadence, step.id, occurrence,
                             contact_id),
                    self.connection, deal.id, cadence.id, step.id, occurrence, contact_id,
                    due, remind_at, create_on, owner.owner_id, step.channel, step.priority,
                    create_after, moved_from,
                ))
        return DealPlan(deal.id, cadence.id, day0, owner.owner_id, tuple(tasks), skipped,
                        owner_fallback=owner.fallback)

    def horizon_date(self, cadence: Cadence, day0: date) -> date:
        return (cadence.horizon or self._horizon).add_to(day0)

    def _schedule(self, cadence: Cadence, day0: date, contract_end: date | None,
                  owner: OwnerContext, today: date, resume: date | None = None
                  ) -> tuple[tuple[Slot, ...], tuple[Skipped, ...]]:
        """The dated steps of a cadence: those counted from day 0, then those anchored on the
        contract end (or skipped when the deal has none). `resume`: a pause's end: nothing is
        created before it, and a task due before it is late as of that day (grace), even when
        the re-plan comes after the pause ended; see `_start`."""
        horizon_date = self.horizon_date(cadence, day0)
        slots, skipped = self._anchored(cadence, "close_date", day0, horizon_date, owner, today,
                                        resume)
        if not self._has_contract_steps[cadence.id]:
            return slots, skipped
        if contract_end is None:
            missing = tuple(Skipped(r.step.id, 0, None, "deal has no contract_end")
                            for r in self.rules(cadence) if r.step.anchor == "contract_end")
            return slots, skipped + missing
        more, more_skipped = self._anchored(cadence, "contract_end", contract_end, horizon_date,
                                            owner, today, resume)
        return slots + more, skipped + more_skipped

    def _anchored(self, cadence: Cadence, anchor: str, base: date, horizon_date: date,
                  owner: OwnerContext, today: date, resume: date | None = None
                  ) -> tuple[tuple[Slot, ...], tuple[Skipped, ...]]:
        """Dated steps with one anchor (memoised: many deals share a day 0, zone and today)."""
        cache_key = (id(cadence), anchor, base, horizon_date, owner.calendar, owner.zone_name,
                     today, resume)
        found = self._schedules.get(cache_key)
        if found is not None:
            return found
        slots: list[Slot] = []
        skipped: list[Skipped] = []
        start, next_working = _start(today, resume), owner.calendar.next_working
        grace, lead_back = self._grace, self._lead_back
        for rule in self.rules(cadence):
            step = rule.step
            if step.anchor != anchor:
                continue
            for occurrence, raw in rule.occurrences(base, horizon_date):
                due = next_working(raw)  # (self.shift inlined: this loop is the hot path)
                if due < start:
                    judge = resume if resume is not None and due < resume else today
                    if grace.add_to(due) < judge:
                        skipped.append(Skipped(step.id, occurrence, due, self.late_reason(
                            due, today, resume if judge is resume else None)))
                        continue
                    due = next_working(start)
                create_on = max(lead_back.add_to(due), start)
                remind_at = reminder_instant(due, self._reminder, owner.zone_name)
                slots.append((step, occurrence, due, remind_at, create_on,
                              start_of_day(create_on, owner.zone_name),
                              raw if raw != due else None))
        found = (tuple(slots), tuple(skipped))
        if len(self._schedules) >= SCHEDULE_CACHE:
            self._schedules.clear()
        self._schedules[cache_key] = found
        return found

    def shift(self, raw: date, calendar: WorkCalendar, today: date, resume: date | None
              ) -> tuple[date, date, date | None]:
        """(due, create on, None), or the due date when the task is skipped as too late: the
        working-day and grace rules, a task due before a pause's end judged as of that day."""
        start = _start(today, resume)
        due = calendar.next_working(raw)
        if due < start:
            judge = resume if resume is not None and due < resume else today
            if self._grace.add_to(due) < judge:
                return due, start, due
            due = calendar.next_working(start)
        return due, max(self._lead_back.add_to(due), start), None

    def late_reason(self, due: date, today: date, resume: date | None) -> str:
        if resume is not None:
            return (f"due before the pause ends (paused until {resume}) and past grace "
                    f"({self._grace}) by then")
        return self._late_reason

    # -- rendering ------------------------------------------------------------------------
    def render(self, task: PlannedTask, deal: Deal, day0: date | None = None) -> tuple[str, str]:
        """Subject and body of a planned task, rendered from its step's templates."""
        cadence = self._cadences[task.cadence_id]
        step = next(s for s in cadence.steps if s.id == task.step)
        contact = next((c for c in deal.contacts if c.id == task.contact_id), None)
        context = {
            "deal": templates.deal_view(deal, day0),
            "owner": templates.owner_view(task.owner_id, deal.owner),
            "contact": templates.contact_view(contact),
            "step": templates.StepView(step.id, task.occurrence, task.due_date,
                                       str(step.channel), cadence.id),
        }
        subject = templates.render(step.subject or default_subject(step), context)
        body = templates.render(step.body, context) if step.body else ""
        return " ".join(subject.split()), body.strip()

    def text(self, task: PlannedTask, deal: Deal | None, day0: date | None
             ) -> tuple[str, str] | None:
        """The subject and body to write: a notice's text as planned, a cadence task's from
        its step's templates and its deal; None when the configuration no longer has its
        step (or the deal is not known)."""
        if task.is_notice:
            return task.subject or "Opportunity reborn", task.body or ""  # (the text as planned)
        cadence = self._cadences.get(task.cadence_id)
        if deal is None or cadence is None or all(s.id != task.step for s in cadence.steps):
            return None
        return self.render(task, deal, day0)

    def reborn_notice(self, lost: Deal, day0: date | None, *, cycle: int, cadence_id: str,
                      reason: str, new_deal: Deal, now: datetime) -> PlannedTask | None:
        """One "Opportunity reborn" task for the lost deal's owner (due its next working day,
        writable now), keyed so that it is written once per cycle. None without an owner."""
        owner = self.owner_context(lost)
        if owner is None:
            return None
        today = now.astimezone(zone(owner.zone_name)).date()
        due = owner.calendar.next_working(today)
        how = {"reopened": "the deal was reopened", "won": "the deal was won",
               "new_deal": f"a new deal was opened on the account: {new_deal.name}",
               "meeting": "a meeting was logged with the account after the loss"}[reason]
        subject = templates.render(self.config.stop.notify_subject, {
            "deal": templates.deal_view(lost, day0),
            "owner": templates.owner_view(owner.owner_id, lost.owner), "contact": None,
            "step": None})
        body = (f"winback stopped the follow-up cadence '{cadence_id}' for {lost.name}: "
                f"{how}. Unwritten follow-ups were dropped.")
        return PlannedTask(
            task_key(self.connection, lost.id, f"{REBORN_CADENCE}@{cycle}", "notify", 0, None),
            self.connection, new_deal.id if reason == "new_deal" else lost.id, REBORN_CADENCE,
            "notify", 0, None, due, reminder_instant(due, self._reminder, owner.zone_name),
            today, owner.owner_id, Channel.TODO, Priority.HIGH, now, subject=subject, body=body)
