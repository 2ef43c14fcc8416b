"""`winback plan CONFIG --diff`: what a new configuration would change in the ledger's
in-flight tasks (added, moved, changed, dropped) and why, before it is deployed. Written
tasks never change.

The next `sync` with the same configuration applies exactly these changes: it re-plans the
deals whose plan fingerprint (worker/cadence/fingerprint.py) differs, the diff lists what that
re-plan changes, and the fingerprint covers everything planning reads (a property test checks
it against a full re-plan of every deal). So after that sync, the diff is empty.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.models import Deal
from worker.cadence.activity import DealActivity
from worker.cadence.engine import DealPlan, PlannedTask, Planner
from worker.cadence.fingerprint import PlanInputs, owner_input
from worker.ledger.activities import deal_activity
from worker.ledger.queries import tracked_with_tasks
from worker.ledger.records import (
    CancelReason,
    Enrollment,
    EnrollmentStatus,
    OutboxTask,
    TaskStatus,
)
from worker.ledger.store import Ledger
from worker.settings.experiments import HOLDOUT
from worker.settings.models import Config
from worker.sync.inputs import activity_kinds

UNKNOWN = "planned before winback recorded its rule inputs (the next sync re-plans it)"
UNCHANGED = "no setting it reads changed (the plan differs with today's date)"
STEP_FIELDS = {"at": "offset (at)", "from": "offset (from)", "every": "every", "until": "until",
               "spread": "spread", "anchor": "anchor", "channel": "channel",
               "priority": "priority", "per": "per", "subject": "subject template",
               "body": "body template", "after": "after", "max_wait": "max_wait",
               "skip_if": "skip_if"}
LABELS = {"reminder_time": "defaults.reminder_time", "lead_time": "defaults.lead_time",
          "grace": "defaults.grace", "weekend": "defaults.calendar.weekend",
          "extra_holidays": "defaults.calendar.extra_holidays", "owner": "owner",
          "timezone": "time zone", "holidays": "holidays", "horizon": "horizon",
          "away": "owner override away", "on_meeting": "stop.on_meeting",
          "daily_cap": "max_tasks_per_owner_per_day"}
UNSET: dict[str, Any] = {"away": [], "on_meeting": "notify", "daily_cap": None}
# (what a key left out of the inputs means)


@dataclass(frozen=True)
class Change:
    connection: str
    deal_id: str
    change: str  # added | moved (due date) | changed (owner, reminder, ...) | dropped
    cadence: str
    step: str
    occurrence: int
    contact_id: str | None
    due_before: date | None
    due_after: date | None
    key: str
    owner_before: str | None = None
    owner_after: str | None = None
    fields: tuple[str, ...] = ()  # what differs: due date, owner, reminder, create on, ...
    why: tuple[str, ...] = ()  # which settings
    arm_before: str | None = None  # the deal's experiment arm as stored (None: none)
    arm_after: str | None = None  # its arm under this configuration (holdout: no tasks)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["due_before"] = self.due_before.isoformat() if self.due_before else None
        out["due_after"] = self.due_after.isoformat() if self.due_after else None
        out["fields"], out["why"] = list(self.fields), list(self.why)
        return out


def diff(config: Config, ledger: Ledger, now: datetime) -> list[Change]:
    changes: list[Change] = []
    with ledger.engine.connect() as conn:
        for settings in config.connections:
            planner = Planner(config, settings.name)
            rows, stored = tracked_with_tasks(conn, settings.name)
            inputs = ledger.plan_inputs(conn, (r.rule_version for r in rows))
            reads = bool(activity_kinds(config))
            deals = {r.deal_id: r.deal() for r in rows}
            given = deal_activity(conn, settings.name, [  # (the sync's input, from the ledger)
                i for i, d in deals.items() if reads or d.paused_until is not None])
            pending = [(row, plan) for row in rows if (plan := _replan(
                planner, row, deals[row.deal_id], now, given.get(row.deal_id))) is not None]
            plans = planner.apply_cap([p for _, p in pending],
                                      _taken(stored, {r.deal_id for r, _ in pending}))
            for (row, _), plan in zip(pending, plans, strict=True):
                before = inputs.get(row.rule_version) if row.rule_version else None
                changes += _deal_changes(planner, settings.name, row, deals[row.deal_id], plan,
                                         now, stored.get(row.deal_id, {}),
                                         dict(before) if before is not None else None)
    return changes


def _replan(planner: Planner, row: Enrollment, deal: Deal, now: datetime,
            activity: DealActivity | None) -> DealPlan | None:
    """The deal's new plan if the next sync re-plans it: when its fingerprint differs (the
    same test as the sync's; a deal whose inputs are unchanged keeps its tasks, even a late
    one that a fresh plan would move to today)."""
    if row.rule_version == planner.plan_inputs(
            row.cadence if row.status is EnrollmentStatus.ACTIVE else None,
            owner_input(deal)).fingerprint:
        return None
    return planner.plan(deal, now, cycle=int(row.cycle), activity=activity,
                        arm=row.stored_arm)


def _taken(stored: dict[str, dict[str, OutboxTask]], replanned: set[str]
           ) -> dict[tuple[str, date], int]:
    """Tasks per (owner, day) the re-plans must fit around under a daily cap: written (and
    sending) ones, and the open tasks of deals the sync does not re-plan."""
    taken: Counter[tuple[str, date]] = Counter()
    for deal_id, tasks in stored.items():
        for row in tasks.values():
            if row.status in (TaskStatus.WRITTEN, TaskStatus.SENDING) \
                    or (row.is_open and deal_id not in replanned):
                taken[(row.owner_id, row.task.due_date)] += 1
    return dict(taken)


def _deal_changes(planner: Planner, connection: str, row: Enrollment, deal: Deal,
                  plan: DealPlan, now: datetime, stored: dict[str, OutboxTask],
                  before: dict[str, Any] | None) -> list[Change]:
    """The changes of one re-planned deal (its plan under the daily caps)."""
    owner = owner_input(deal)
    after = planner.plan_inputs(plan.cadence, owner)
    out: list[Change] = []
    arms = {"arm_before": row.arm if row.experiment is not None else None,
            "arm_after": plan.arm}
    arm_why = _arm_reason(row, plan)
    planned = {t.key: t for t in plan.tasks}
    why_by_step: dict[str, tuple[str, ...]] = {}
    for key, new in planned.items():
        old = stored.get(key)
        why = why_by_step.get(new.step) or why_by_step.setdefault(
            new.step, arm_why + reasons(before, after, new.step))
        if old is None or (old.status is TaskStatus.CANCELLED
                           and old.cancel_reason == CancelReason.REPLANNED):
            out.append(Change(connection, row.deal_id, "added", new.cadence, new.step,
                              new.occurrence, new.contact_id, None, new.due_date, key,
                              None, new.owner_id, (), why, **arms))
            continue
        fields = _differs(old.task, new, now) if old.is_open else ()
        if fields:
            kind = "moved" if "due date" in fields else "changed"
            out.append(Change(connection, row.deal_id, kind, new.cadence, new.step,
                              new.occurrence, new.contact_id, old.task.due_date, new.due_date,
                              key, old.owner_id, new.owner_id, fields, why, **arms))
    for key, gone in stored.items():
        t = gone.task
        if key not in planned and gone.is_open and not t.is_notice:
            out.append(Change(connection, row.deal_id, "dropped", t.cadence, t.step,
                              t.occurrence, t.contact_id, t.due_date, None, key,
                              t.owner_id, None, (), arm_why + reasons(before, after, t.step),
                              **arms))
    return out


def _arm_reason(row: Enrollment, plan: DealPlan) -> tuple[str, ...]:
    """What an experiment does to this deal: drawn into an arm (a new experiment id), or
    in the holdout (no tasks)."""
    if plan.experiment is None:
        return ("experiment removed: the deal gets the cadence as written",) \
            if row.experiment is not None else ()
    out = []
    if row.experiment != plan.experiment:
        out.append(f"experiment {plan.experiment}: the deal was drawn into arm {plan.arm}")
    if plan.arm == HOLDOUT:
        out.append(f"experiment {plan.experiment} holdout: no tasks for this deal")
    return tuple(out)


def _differs(old: PlannedTask, new: PlannedTask, now: datetime) -> tuple[str, ...]:
    """What a re-plan would change in an unwritten task (a create time already past stays
    past: the task is due for writing either way)."""
    fields: list[str] = []
    if old.due_date != new.due_date:
        fields.append("due date")
    if old.owner_id != new.owner_id:
        fields.append("owner")
    if old.remind_at != new.remind_at:
        fields.append("reminder")
    if max(old.create_after, now) != max(new.create_after, now):
        fields.append("create on")
    if old.channel != new.channel:
        fields.append("channel")
    if old.priority != new.priority:
        fields.append("priority")
    return tuple(fields)


def reasons(before: dict[str, Any] | None, after: PlanInputs, step: str) -> tuple[str, ...]:
    """Which settings differ between what a deal was planned with and today's rules, for a
    task of `step` (step edits of other steps do not count)."""
    if before is None:
        return (UNKNOWN,)
    old, new = before.get("inputs", {}), after.inputs
    old_src, new_src = before.get("sources", {}), after.sources
    out: list[str] = []
    if old.get("match") != new.get("match"):
        out.append("cadence matching (`when` tests or the order of cadences)")
    if old.get("cadence") != new.get("cadence"):
        out += _cadence_reasons(old.get("cadence"), new.get("cadence"), step)
    gained_or_lost = (old.get("owner") is None) != (new.get("owner") is None)
    for key, label in LABELS.items():
        if old.get(key) == new.get(key) or (gained_or_lost and key != "owner"):
            continue  # (an owner that appears or goes: the rest was not read on one side)
        source = _source(old_src.get(key), new_src.get(key)) or label
        out.append(f"{source}: {_show(old.get(key, UNSET.get(key)))} -> "
                   f"{_show(new.get(key, UNSET.get(key)))}")
    return tuple(dict.fromkeys(out)) or (UNCHANGED,)


def _source(old: str | None, new: str | None) -> str | None:
    """The setting to name: an override or fallback that appears (or goes) wins."""
    if old == new or old is None:
        return new
    if new is None:
        return old
    special = ("owner override", "fallback_owner", "cadence ")
    if new.startswith(special):
        return new
    if old.startswith(special):
        return f"{old} removed"
    return new


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _cadence_reasons(old: dict[str, Any] | None, new: dict[str, Any] | None,
                     step: str) -> list[str]:
    if old is None or new is None:
        return []  # matched now and not before (or the reverse): the match reason says it
    name = f"cadence {new.get('id')}"
    out = [f"{name} {key}" for key in sorted(
        (set(old) | set(new)) - {"steps", "id", "horizon", "experiment"})
        if old.get(key) != new.get(key)]
    out += _experiment_reasons(name, old.get("experiment"), new.get("experiment"), step)
    before = {s["id"]: s for s in old.get("steps", [])}
    after = {s["id"]: s for s in new.get("steps", [])}
    if step in before and step in after:
        out += [f"{name} step {step} {STEP_FIELDS.get(key, key)}"
                for key in sorted(set(before[step]) | set(after[step]))
                if before[step].get(key) != after[step].get(key)]
    elif step in after:
        out.append(f"{name} step {step} added")
    elif step in before:
        out.append(f"{name} step {step} removed")
    return out


def _experiment_reasons(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None,
                        step: str) -> list[str]:
    if old == new:
        return []
    if old is None or new is None:
        return [f"{name} experiment {'added' if old is None else 'removed'}"]
    out = [f"{name} experiment {key}: {_show(old.get(key))} -> {_show(new.get(key))}"
           for key in ("id", "holdout", "base_weight") if old.get(key) != new.get(key)]
    variants_before, variants_after = old.get("variants") or {}, new.get("variants") or {}
    for arm in sorted(set(variants_before) | set(variants_after)):
        was, now = variants_before.get(arm), variants_after.get(arm)
        if was == now:
            continue
        if was is None or now is None:
            out.append(f"{name} experiment variant {arm} {'added' if was is None else 'removed'}")
            continue
        if was.get("weight") != now.get("weight"):
            out.append(f"{name} experiment variant {arm} weight: {_show(was.get('weight'))} -> "
                       f"{_show(now.get('weight'))}")
        if (was.get("steps") or {}).get(step) != (now.get("steps") or {}).get(step):
            out.append(f"{name} experiment variant {arm} step {step} overrides")
    return out


def write_table(changes: list[Change], console: Any) -> None:
    """The ops view: one row per task (the owner change, what differs), and the reasons as
    numbered notes below (most tasks of an edit share them)."""
    if not changes:
        console.print("No change: this configuration plans the same in-flight tasks.")
        return
    from rich.markup import escape
    from rich.table import Table

    notes: dict[tuple[str, ...], int] = {}
    table = Table(title="Changes to tasks not yet written", title_justify="left")
    for column in ("connection", "deal", "change", "cadence", "step", "#", "contact",
                   "due before", "due after", "owner", "what", "why"):
        table.add_column(column)
    for c in changes:
        owner = (f"{c.owner_before} -> {c.owner_after}"
                 if c.owner_before and c.owner_after and c.owner_before != c.owner_after
                 else c.owner_after or c.owner_before or "")
        note = notes.setdefault(c.why, len(notes) + 1)
        arm = c.arm_after if c.arm_before in (None, c.arm_after) \
            else f"{c.arm_before} -> {c.arm_after}"
        cadence = c.cadence + (f" ({arm})" if arm else "")
        cells = (c.connection, c.deal_id, c.change, cadence, c.step, str(c.occurrence),
                 c.contact_id or "", str(c.due_before or ""), str(c.due_after or ""), owner,
                 ", ".join(c.fields), f"[{note}]")
        table.add_row(*(escape(cell) for cell in cells))
    console.print(table)
    console.print("Why:")
    for why, number in notes.items():
        console.print(f"  [{number}] " + "; ".join(why), soft_wrap=True, markup=False)
    counts = {k: sum(c.change == k for c in changes)
              for k in ("added", "moved", "changed", "dropped")}
    deals = len({(c.connection, c.deal_id) for c in changes})
    console.print(", ".join(f"{v} {k}" for k, v in counts.items()) + f" task(s) in {deals} "
                  "deal(s); the next sync applies them", soft_wrap=True)
