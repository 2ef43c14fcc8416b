"""Plans that react to what happened in the CRM: `after` / `max_wait`, `skip_if`, a pause
(`Deal.paused_until`) and `stop.on_meeting`. Pure like the engine (the activity is an input,
like `now`); `Planner.plan` uses it when the deal's cadence has `after` or `skip_if` steps, the
deal is paused, or activity is given. Without any of these, plans are exactly the engine's.

Pinned semantics (docs/configuration.md; tests/fixtures/plan-vectors/activity/README.md):
- all dates are the owner's local dates (completions, activity times, meetings);
- `after: STEP`: while STEP's task is neither completed, skipped nor past `max_wait`, the
  dependent step is waiting (no task). Completed: its day 0 is the completion date (even a
  weekend, a holiday or a day before STEP's due date), then the usual working-day and grace
  rules. No completion by STEP's due date + max_wait: day 0 is that day (a completion after
  it changes nothing). STEP skipped (late past grace, skip_if): day 0 is STEP's due date. STEP
  not planned (beyond the horizon, no contract_end): the dependent step is not planned.
  Both per stakeholder: paired by contact; otherwise the first completion counts. A written
  task keeps the due date it was written with;
- `skip_if`: decided once `now` reaches the task's create date (earlier: planned as usual);
  an activity of one of the kinds, not deleted, logged at or before `now`, linked to the deal,
  its account, or (per-stakeholder step) that contact, on a day from due - within to the due
  date, both included, skips it (the most recent such activity is named). A decision already
  made (`DealActivity.skipped`) stays, a written task is never skipped;
- a pause: nothing is created before `paused_until`; tasks due before it are late as of that
  day (grace), the rest go on;
- `stop.on_meeting`: the first meeting linked to the deal, its account or one of its contacts
  on a day after day 0 (and at or before `now`): `notify` plans one notice for the owner (due
  the meeting's working day, or today's if that is past), `stop` stops the cadence as reborn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from connectors.models import Activity, ActivityKind, Channel, Deal, Priority
from worker.cadence.activity import NO_ACTIVITY, ActivityRef, DealActivity, Moved, Waiting
from worker.cadence.calendar import zone
from worker.cadence.keys import task_key
from worker.cadence.outcome import DealPlan, Skipped
from worker.cadence.owners import OwnerContext
from worker.cadence.tasks import MEETING_CADENCE, PlannedTask, reminder_instant, start_of_day
from worker.settings.models import Cadence, Step

if TYPE_CHECKING:
    from worker.cadence.engine import Planner


@dataclass(frozen=True, slots=True)
class _State:
    """A single-occurrence step's task, as the steps `after` it see it."""

    due: date | None
    completed: date | None
    open: bool  # planned, not completed and not skipped: the steps after it wait


class ReactivePlan:
    """One deal's plan with its activity (see the module docstring)."""

    def __init__(self, planner: Planner, deal: Deal, cadence: Cadence, owner: OwnerContext,
                 day0: date, today: date, now: datetime, key_cadence: str,
                 activity: DealActivity | None) -> None:
        self.p, self.deal, self.cadence, self.owner = planner, deal, cadence, owner
        self.day0, self.today, self.now, self.key_cadence = day0, today, now, key_cadence
        self.act = activity or NO_ACTIVITY
        self.tz = zone(owner.zone_name)
        paused = deal.paused_until
        # An ended pause still counts: what fell due in it is judged as of its end (grace).
        self.resume = paused
        self.stakeholders = tuple(c.id for c in deal.contacts if not c.opted_out)
        self.contacts = frozenset(c.id for c in deal.contacts)
        self.logged = sorted((a for a in self.act.activities if not a.deleted and a.at <= now),
                             key=lambda a: (a.at, a.id), reverse=True)
        self.tasks: list[PlannedTask] = []
        self.skipped: list[Skipped] = []
        self.waiting: list[Waiting] = []
        self.moved: list[Moved] = []
        self.states: dict[str, dict[str | None, _State]] = {}

    def run(self) -> DealPlan:
        on_meeting = self.p.config.stop.on_meeting
        meeting = self._meeting() if on_meeting != "ignore" else None
        owner = self.owner
        if meeting is not None and on_meeting == "stop":
            return DealPlan(self.deal.id, self.cadence.id, self.day0, owner.owner_id,
                            reason=f"stopped as reborn (stop.on_meeting: stop): meeting "
                                   f"{meeting.id} on {self._day(meeting.at)} after the loss",
                            owner_fallback=owner.fallback, stop="meeting",
                            stop_activity=meeting)
        p, cadence, deal = self.p, self.cadence, self.deal
        slots, skipped = p._schedule(cadence, self.day0, deal.contract_end, owner, self.today,
                                     self.resume)
        fixed_slots = slots if self.resume is None else p._schedule(
            cadence, self.day0, deal.contract_end, owner, self.today)[0]
        fixed = {(s[0].id, s[1]): s[2] for s in fixed_slots}
        steps = {s.id: s for s in cadence.steps}
        dependent = [s for s in cadence.steps if s.after]
        later = {s.id for s in dependent}
        for skip in skipped:
            if skip.step in later:
                continue
            step = steps[skip.step]
            for contact in self._contacts(step):
                self._late(step, skip.occurrence, contact, skip.due_date, skip.reason)
        why = f"paused until {deal.paused_until}" if self.resume else ""
        for step, occurrence, due, _, create_on, _, moved_from in slots:
            if step.id in later:
                continue
            for contact in self._contacts(step):
                self._emit(step, occurrence, contact, due, create_on,
                           fixed.get((step.id, occurrence)), why, moved_from)
        for step in _ordered(dependent):
            self._dependent(step, steps[str(step.after)], fixed)
        if meeting is not None:
            self.tasks.append(self._notice(meeting))
        return DealPlan(deal.id, cadence.id, self.day0, owner.owner_id, tuple(self.tasks),
                        tuple(self.skipped), owner_fallback=owner.fallback,
                        waiting=tuple(self.waiting), moved=tuple(self.moved))

    # -- helpers ----------------------------------------------------------------------------
    def _day(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def _contacts(self, step: Step) -> tuple[str | None, ...]:
        return self.stakeholders if step.per == "stakeholder" else (None,)

    def _key(self, step: Step, occurrence: int, contact: str | None) -> str:
        return task_key(self.p.connection, self.deal.id, self.key_cadence, step.id, occurrence,
                        contact)

    def _state(self, step: Step, contact: str | None, state: _State) -> None:
        if step.at is not None:
            self.states.setdefault(step.id, {})[contact] = state

    def _completed(self, key: str) -> date | None:
        done = self.act.completed_at(key)
        return self._day(done) if done is not None and done <= self.now else None

    def _late(self, step: Step, occurrence: int, contact: str | None, due: date | None,
              reason: str) -> None:
        """A task the plan skips as too late (or undated), unless it was written already."""
        key = self._key(step, occurrence, contact) if due is not None else None
        if key is not None and key in self.act.written:
            self._emit(step, occurrence, contact, self.act.written[key], self.today, None, "",
                       None)
            return
        self.skipped.append(Skipped(step.id, occurrence, due, reason, contact, None, key))
        self._state(step, contact, _State(due, self._completed(key) if key else None, False))

    def _linked(self, activity: Activity, contact: str | None) -> bool:
        deal = self.deal
        return activity.deal_id == deal.id or (
            deal.account_id is not None and activity.account_id == deal.account_id) or (
            contact is not None and contact in activity.contact_ids)

    def _emit(self, step: Step, occurrence: int, contact: str | None, due: date,
              create_on: date, fixed: date | None, why: str, moved_from: date | None) -> None:
        key = self._key(step, occurrence, contact)
        written = self.act.written.get(key)
        if written is None:
            cause = self.act.skipped.get(key)
            if cause is None and step.skip_if is not None \
                    and self.now >= start_of_day(create_on, self.owner.zone_name):
                cause = self._recent(step, contact, due)
            if cause is not None:
                within = step.skip_if.within if step.skip_if else "?"
                self.skipped.append(Skipped(
                    step.id, occurrence, due, f"skip_if: {cause.kind} {cause.id} logged "
                    f"{self._day(cause.at)}, within {within} before the due date",
                    contact, cause, key))
                self._state(step, contact, _State(due, None, False))
                return
        elif written != due:
            due, moved_from, fixed = written, None, None
        owner = self.owner
        self.tasks.append(PlannedTask(
            key, self.p.connection, self.deal.id, self.cadence.id, step.id, occurrence,
            contact, due, reminder_instant(due, self.p._reminder, owner.zone_name), create_on,
            owner.owner_id, step.channel, step.priority,
            start_of_day(create_on, owner.zone_name), moved_from))
        completed = self._completed(key)
        self._state(step, contact, _State(due, completed, completed is None))
        if why and written is None and fixed != due:
            self.moved.append(Moved(key, step.id, occurrence, contact, fixed, due, why))

    def _recent(self, step: Step, contact: str | None, due: date) -> ActivityRef | None:
        rule = step.skip_if
        if rule is None:
            return None
        first = rule.within.subtract_from(due)
        for activity in self.logged:  # most recent first
            if activity.kind in rule.activity and first <= self._day(activity.at) <= due \
                    and self._linked(activity, contact if step.per == "stakeholder" else None):
                return ActivityRef.of(activity)
        return None

    def _dependent(self, step: Step, target: Step, fixed: dict[tuple[str, int], date]) -> None:

        upstream = self.states.get(target.id, {})
        rule = next(r for r in self.p.rules(self.cadence) if r.step is step)
        horizon = self.p.horizon_date(self.cadence, self.day0)
        for contact in self._contacts(step):
            paired = target.per == "stakeholder" and step.per == "stakeholder"
            states = ([upstream[contact]] if contact in upstream else []) if paired \
                else list(upstream.values())
            base, how, deadline = self._base(step, states)
            if how == "waiting":
                self.waiting.append(Waiting(step.id, contact, target.id, deadline))
                self._state(step, contact, _State(None, None, True))
                continue
            if base is None:
                continue
            why = f"after {target.id}: day 0 {base} ({how})"
            for occurrence, raw in rule.occurrences(base, horizon):
                due, create_on, late = self.p.shift(raw, self.owner.calendar, self.today,
                                                    self.resume)
                if late is not None:
                    self._late(step, occurrence, contact, late,
                               self.p.late_reason(late, self.today, self.resume
                                                  if self.resume and late < self.resume
                                                  else None))
                    continue
                self._emit(step, occurrence, contact, due, create_on,
                           fixed.get((step.id, occurrence)), why, raw if raw != due else None)

    def _base(self, step: Step, states: list[_State]) -> tuple[date | None, str, date | None]:
        """(day 0 of a dependent step, how it was found, the max_wait deadline)."""
        if not states:
            return None, "not planned", None
        dues = [s.due for s in states if s.due is not None]
        due = min(dues) if dues else None
        deadline = step.max_wait.add_to(due) if step.max_wait is not None and due else None
        done = [s.completed for s in states if s.completed is not None]
        if done:
            first = min(done)
            if deadline is not None and first > deadline:
                return deadline, f"max_wait {step.max_wait} passed before the completion", \
                    deadline
            return first, f"{step.after} completed", deadline
        if any(s.open for s in states):
            if deadline is not None and self.today >= deadline:
                return deadline, f"not completed within max_wait {step.max_wait}", deadline
            return None, "waiting", deadline
        if due is None:
            return None, "not planned", None
        return due, f"{step.after} skipped: from its due date", None

    def _meeting(self) -> ActivityRef | None:
        for activity in reversed(self.logged):  # earliest first
            if activity.kind is ActivityKind.MEETING and self._day(activity.at) > self.day0 \
                    and (self._linked(activity, None)
                         or not self.contacts.isdisjoint(activity.contact_ids)):
                return ActivityRef.of(activity)
        return None

    def _notice(self, meeting: ActivityRef) -> PlannedTask:
        deal, owner, cal = self.deal, self.owner, self.owner.calendar
        cycle = self.key_cadence.partition("@")[2] or "1"
        key = task_key(self.p.connection, deal.id, f"{MEETING_CADENCE}@{cycle}", "notify", 0,
                       None)
        due = self.act.written.get(key) or cal.next_working(max(self._day(meeting.at),
                                                                self.today))
        who = deal.account_name or deal.name or deal.id
        subject = f"Meeting booked with {who}: is the opportunity back?"
        body = (f"A meeting ({meeting.kind} {meeting.id}, {self._day(meeting.at)}) was logged "
                f"with {who} after {deal.name or deal.id} was lost. If the opportunity is back, "
                f"reopen the deal or open a new one: winback then stops the follow-up cadence "
                f"'{self.cadence.id}'. Otherwise the cadence goes on.")
        return PlannedTask(
            key, self.p.connection, deal.id, MEETING_CADENCE, "notify", 0, None, due,
            reminder_instant(due, self.p._reminder, owner.zone_name), self.today,
            owner.owner_id, Channel.TODO, Priority.HIGH,
            start_of_day(self.today, owner.zone_name), subject=subject, body=body)


def _ordered(steps: list[Step]) -> list[Step]:
    """Dependent steps, each after the dependent step it waits for (validate refuses cycles)."""
    pending = {s.id: s for s in steps}
    out: list[Step] = []
    while pending:
        ready = [s for s in pending.values() if s.after not in pending]
        if not ready:  # a cycle (refused by validate): plan nothing more
            break
        for step in ready:
            out.append(step)
            del pending[step.id]
    return out
