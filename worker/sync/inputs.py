"""What a plan reads besides the deal (issue 13): which activity kinds a configuration reads,
the planner's activity input from the ledger, and when a plan changes by itself."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from connectors.models import ActivityKind, Deal
from worker.cadence.activity import DealActivity
from worker.cadence.outcome import DealPlan
from worker.cadence.tasks import start_of_day
from worker.ledger import activities as store
from worker.settings.models import Config
from worker.sync.context import Tick


def activity_kinds(config: Config) -> frozenset[ActivityKind]:
    """The activity kinds the rules read (empty: the connection reads no activity)."""
    kinds: set[ActivityKind] = set()
    for cadence in config.cadences:
        for step in cadence.steps:
            if step.skip_if is not None:
                kinds.update(step.skip_if.activity)
            if step.after is not None:
                kinds.add(ActivityKind.TASK)
    stop = config.stop
    explicit = "stop" in config.model_fields_set and "on_meeting" in stop.model_fields_set
    if stop.on_meeting != "ignore" and (explicit or kinds):
        kinds.add(ActivityKind.MEETING)
    return frozenset(kinds)


def skip_kinds(config: Config) -> frozenset[ActivityKind]:
    """The activity kinds a `skip_if` rule may skip a task for."""
    return frozenset(k for c in config.cadences for s in c.steps if s.skip_if is not None
                     for k in s.skip_if.activity)


def reads_activity(tick: Tick) -> bool:
    return bool(activity_kinds(tick.ctx.config))


def activity_for(tick: Tick, conn: Connection, deals: Sequence[Deal]
                 ) -> dict[str, DealActivity]:
    """The planner's activity input for these deals from the ledger (empty when the
    connection reads no activity and no deal is paused: plans are then the engine's own)."""
    if not deals or not (reads_activity(tick) or any(d.paused_until for d in deals)):
        return {}
    return store.deal_activity(conn, tick.ctx.name, [d.id for d in deals])



def next_replan(tick: Tick, deal: Deal, plan: DealPlan, activity: DealActivity | None
                ) -> datetime | None:
    """When this plan changes by itself: the earliest create moment of an unwritten task
    whose step has skip_if (decided then), the pause's end, a max_wait deadline."""
    planner = tick.ctx.planner
    owner = planner.owner_context(deal)
    zone_name = owner.zone_name if owner is not None else None
    written = activity.written if activity is not None else {}
    moments: list[datetime] = []
    cadence = planner.cadence(plan.cadence, plan.arm) if plan.cadence else None
    judged = {s.id for s in cadence.steps if s.skip_if is not None} if cadence else set()
    moments += [t.create_after for t in plan.tasks
                if t.step in judged and not t.is_notice and t.key not in written
                and t.create_after > tick.now]
    if deal.paused_until is not None:
        moments.append(start_of_day(deal.paused_until, zone_name))
    moments += [start_of_day(w.deadline, zone_name) for w in plan.waiting if w.deadline]
    later = [m for m in moments if m > tick.now]
    return min(later) if later else None
