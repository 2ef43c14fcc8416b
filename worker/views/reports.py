"""`winback status` and `winback report`: what the ledger knows, for people and scripts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.base import Connector
from worker.ledger import outcomes, queries
from worker.ledger.activities import activity_counts
from worker.ledger.experiments import arm_counts
from worker.ledger.leases import Leases
from worker.ledger.records import EnrollmentStatus, StopReason, TaskStatus
from worker.ledger.store import Ledger
from worker.sync.refusals import failed_by_reason, reason_of
from worker.views import experiments

REBORN_WINDOWS = (90, 180, 365)
# The report's per-step columns a task status counts in (besides "planned": every task).
STEP_COLUMNS = {TaskStatus.WRITTEN: "written", TaskStatus.CANCELLED: "cancelled",
                TaskStatus.FAILED: "failed"}


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def status(ledger: Ledger, connections: list[str], now: datetime) -> list[dict[str, Any]]:
    out = []
    with ledger.engine.connect() as conn:
        for name in connections:
            state = ledger.connection_row_in(conn, name)
            held = state is not None and state.lease_held(now)
            out.append({
                "connection": name,
                "watermark": _iso(state.watermark) if state else None,
                "last_tick_at": _iso(state.last_tick_at) if state else None,
                "last_tick_result": state.last_tick_result if state else None,
                "last_tick_seconds": state.last_tick_seconds if state else None,
                "last_success_at": _iso(state.last_success_at) if state else None,
                "last_error": state.last_error if state else None,
                "next_due": _iso(state.next_due) if state else None,
                "enrollments": queries.enrollment_counts(conn, name),
                "experiment_arms": queries.experiment_counts(conn, name),
                "tasks": queries.task_counts(conn, name),
                "tasks_failed_by_reason": failed_by_reason(conn, name),
                "activity_watermark": _iso(state.activity_watermark) if state else None,
                "activity": activity_counts(conn, name),  # skipped by activity, waiting
                "next_write_at": _iso(queries.next_write_at(conn, name)),
                "writes_due_within_24h": queries.writes_due_by(conn, name,
                                                               now + timedelta(days=1)),
                "lease_holder": state.owner if held and state else None,
                "api_usage": (f"{state.api_used}/{state.api_limit}"
                              if state is not None and state.api_limit else None),
            })
    return out


@dataclass
class ReportRow:
    cadence: str
    loss_reason: str
    enrolled: int = 0
    reborn: dict[int, int] = field(default_factory=lambda: dict.fromkeys(REBORN_WINDOWS, 0))
    won_back: int = 0
    amount_lost: float = 0.0
    amount_won_back: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"cadence": self.cadence, "loss_reason": self.loss_reason,
                "enrolled": self.enrolled,
                **{f"reborn_{d}d": self.reborn[d] for d in REBORN_WINDOWS},
                "won_back": self.won_back, "amount_lost": round(self.amount_lost, 2),
                "amount_won_back": round(self.amount_won_back, 2)}


def winback_report(ledger: Ledger, connections: list[str], since: date,
                   today: date | None = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows by (cadence, loss reason) for deals lost since `since`, and task counts by step
    (planned, written, completed, cancelled, failed)."""
    report = outcome_report(ledger, connections, since, today or datetime.now(UTC).date(), {})
    return report["by_cadence"], report["by_step"]


def failed_report(ledger: Ledger, connections: list[str], since: date
                  ) -> dict[str, dict[str, int]]:
    """Per connection, the tasks the CRM refused for good (deals lost since `since`), by
    reason (the CRM's error code)."""
    out: dict[str, dict[str, int]] = {}
    with ledger.engine.connect() as conn:
        rows = queries.failed_errors(conn, connections, since)
    for connection, last_error, count in rows:
        reasons = out.setdefault(connection, {})
        reason = reason_of(last_error)
        reasons[reason] = reasons.get(reason, 0) + count
    return {c: dict(sorted(r.items())) for c, r in sorted(out.items())}


def refresh_completion(ledger: Ledger, leases: Leases, connection: str, connector: Connector,
                       limit: int = 2000) -> int:
    """Read completion (and when) of written, open tasks from the CRM now: the task status
    read, by CRM id, in the CRM's largest batches."""
    done = 0
    after = 0
    while True:
        with ledger.engine.connect() as conn:
            rows = outcomes.open_written(conn, connection, after, limit)
        if not rows:
            return done
        after = rows[-1][0]
        found = connector.task_status([crm_id for _, crm_id in rows])
        completed = {s.crm_id: s.completed_at for s in found.values() if s.completed}
        with ledger.write() as conn:
            outcomes.mark_completed_at(conn, connection, completed, by="crm_id")
        done += len(completed)


# -- the outcome report (issue 14) ---------------------------------------------------------

EXIT_REASONS = ("reborn: reopened", "reborn: new deal on the account", "reborn: meeting",
                "won", "deleted", "opted out", "horizon reached", "disqualified",
                "still running")
_STOP_EXIT = {StopReason.REOPENED: "reborn: reopened",
              StopReason.NEW_DEAL: "reborn: new deal on the account",
              StopReason.MEETING: "reborn: meeting", StopReason.WON: "won",
              StopReason.DELETED: "deleted", StopReason.OPTED_OUT: "opted out"}
REBIRTH_BUCKETS = ((0, 30), (31, 60), (61, 90), (91, 180), (181, 365), (366, None))
DIMENSION_LABELS = {"cadence": "cadence", "loss_reason": "loss reason",
                    "competitor": "competitor", "owner_id": "owner"}


@dataclass(frozen=True)
class CadenceShape:
    """What the report needs of a cadence's configuration."""

    has_steps: bool
    horizon_start: date  # an enrollment lost before this day has reached its horizon
    experiment: str | None = None  # the experiment id its rules run now


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _exit_name(reason: str | None) -> str:
    """The report's words for a stop reason (an unknown one as it is stored)."""
    if reason is None:
        return "(none)"
    known = {r.value: r for r in StopReason}
    return _STOP_EXIT.get(known[reason], reason) if reason in known else reason


def _bucket(days: int) -> str:
    for low, high in REBIRTH_BUCKETS:
        if high is None:
            return f">{low - 1}d"
        if days <= high:
            return f"{low}-{high}d"
    raise AssertionError(days)  # pragma: no cover (the last bucket is open)


def _deal_rows(groups: list[outcomes.EnrollmentGroup]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], ReportRow] = {}
    for g in groups:
        if not g.since:
            continue
        key = (g.cadence, g.loss_reason or "(none)")
        row = rows.setdefault(key, ReportRow(*key))
        row.enrolled += g.since
        row.amount_lost += g.amount_lost
        for window in REBORN_WINDOWS:
            row.reborn[window] += g.reborn_within[window]
        row.won_back += g.won_back
        row.amount_won_back += g.amount_won_back
    return [r.as_dict() for _, r in sorted(rows.items())]


def _step_rows(counts: list[outcomes.StepCounts], skips: list[tuple[str, str, str, int]]
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The step table (planned, written, completed, cancelled, failed) and the outcome
    per step (written, completed on time / late, open, overdue, skipped by reason)."""
    legacy: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("planned", "written", "completed", "cancelled", "failed"), 0))
    outcome: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("written", "completed", "on_time", "late", "open", "overdue"), 0))
    cap_skips: dict[tuple[str, str], int] = defaultdict(int)
    for c in counts:
        key = (c.cadence, c.step)
        entry = legacy[key]
        entry["planned"] += c.count  # (every task was planned once)
        if c.status in STEP_COLUMNS:
            entry[STEP_COLUMNS[c.status]] += c.count
        if c.status is TaskStatus.WRITTEN and c.completed:
            entry["completed"] += c.count
        if c.status is TaskStatus.SKIPPED and c.by_cap:
            cap_skips[key] += c.count  # the ledger's daily cap skipped it (worker/sync/cap.py)
        if c.status is not TaskStatus.WRITTEN:
            continue
        found = outcome[key]
        found["written"] += c.count
        if c.by_winback:  # closed by winback on a stop: neither done by the owner nor open
            continue
        if c.completed:
            found["completed"] += c.count
            found["on_time"] += c.on_time
            found["late"] += c.late
        else:
            found["open"] += c.count
            found["overdue"] += c.overdue
    skipped: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for cadence, step, reason, count in skips:
        skipped[(cadence, step)][reason] = skipped[(cadence, step)].get(reason, 0) + count
    for key, count in cap_skips.items():
        skipped[key]["cap"] = skipped[key].get("cap", 0) + count
    by_step = [{"cadence": c, "step": s, **v} for (c, s), v in sorted(legacy.items())]
    rows = []
    for key in sorted(set(outcome) | set(skipped)):
        found = outcome.get(key) or dict.fromkeys(
            ("written", "completed", "on_time", "late", "open", "overdue"), 0)
        reasons = dict(sorted(skipped.get(key, {}).items()))
        rows.append({"cadence": key[0], "step": key[1], **found,
                     "skipped": sum(reasons.values()), "skipped_by": reasons,
                     "completion_rate": _rate(found["completed"], found["written"]),
                     "on_time_rate": _rate(found["on_time"], found["written"])})
    return by_step, rows


def _exits(groups: list[outcomes.EnrollmentGroup], shapes: dict[str, CadenceShape]
           ) -> list[dict[str, Any]]:
    exit_rows: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EXIT_REASONS, 0))
    for g in groups:
        if not g.since:
            continue
        row = exit_rows[g.cadence]
        shape = shapes.get(g.cadence)
        if g.status == EnrollmentStatus.STOPPED and g.stop_reason is not None:
            name = _exit_name(g.stop_reason)
            row[name] = row.get(name, 0) + g.since
        elif shape is not None and not shape.has_steps:
            row["disqualified"] += g.since
        elif g.status == EnrollmentStatus.FINISHED:
            row["horizon reached"] += g.since
        else:
            row["horizon reached"] += g.past_horizon
            row["still running"] += g.since - g.past_horizon
    return [{"cadence": c, **v, "total": sum(v.values())} for c, v in sorted(exit_rows.items())]


def _rates(segments: list[tuple[str, str | None, dict[int, tuple[int, int, float]]]]
           ) -> dict[str, list[dict[str, Any]]]:
    rates: dict[str, list[dict[str, Any]]] = {}
    for dimension in outcomes.DIMENSIONS:
        sums: dict[str, dict[int, list[float]]] = defaultdict(
            lambda: {d: [0, 0, 0.0] for d in REBORN_WINDOWS})
        for found, value, windows in segments:
            if found != dimension:
                continue
            for d in REBORN_WINDOWS:
                n, won, amount = windows[d]
                cell = sums[value or "(none)"][d]
                cell[0] += n
                cell[1] += won
                cell[2] += amount
        rates[dimension] = [{"value": value, **{
            f"{d}d": {"n": int(n), "won_back": int(won), "rate": _rate(int(won), int(n)),
                      "amount": round(amount, 2)} for d, (n, won, amount) in per.items()}}
            for value, per in sorted(sums.items()) if any(per[d][0] for d in per)]
    return rates


def outcome_report(ledger: Ledger, connections: list[str], since: date, today: date,
                   shapes: dict[str, CadenceShape]) -> dict[str, Any]:
    """Per step what was done (on time, late), left open, skipped and why; why cadences
    ended; win-back rates by cadence, loss reason, competitor and owner over 90/180/365 days
    (each with its n); per reborn deal the last completed touch, and days from loss to
    rebirth; and the deal and step tables. Counts come from the rollup tables the database
    keeps up to date (worker/ledger/rollups.py), the reborn deals from their enrollments."""
    with ledger.engine.connect() as conn:
        counts = outcomes.step_rollup(conn, connections, since, today)
        skips = outcomes.skip_counts(conn, connections, since)
        groups = outcomes.enrollment_rollup(conn, connections, since, REBORN_WINDOWS,
                                            {c: s.horizon_start for c, s in shapes.items()})
        segments = outcomes.segment_windows(conn, connections, today, REBORN_WINDOWS)
        reborn = outcomes.reborn_deals(conn, connections, since)
        arms = arm_counts(conn, connections, today)
    by_step, by_outcome = _step_rows(counts, skips)
    deals = []
    last_touch: dict[str, int] = defaultdict(int)
    histogram = dict.fromkeys((_bucket(low) for low, _ in REBIRTH_BUCKETS), 0)
    days_list = []
    for r in reborn:
        days = (r.reborn_at.astimezone(UTC).date() - r.day0).days
        days_list.append(days)
        histogram[_bucket(days)] += 1
        touch = f"{r.cadence} / {r.last_step}" if r.last_step else f"{r.cadence} / (none)"
        last_touch[touch] += 1
        deals.append({"connection": r.connection, "deal_id": r.deal_id, "cadence": r.cadence,
                      "reason": _exit_name(r.reason),
                      "lost_on": r.day0.isoformat(), "reborn_at": _iso(r.reborn_at),
                      "days": days, "last_touch": r.last_step,
                      "last_touch_completed_at": _iso(r.last_completed_at)})
    days_list.sort()
    return {
        "today": today.isoformat(),
        "by_cadence": _deal_rows(groups),
        "by_step": by_step,
        "by_step_outcome": by_outcome,
        "exits": _exits(groups, shapes),
        "winback_rates": _rates(segments),
        "reborn": {
            "count": len(deals),
            "median_days": days_list[len(days_list) // 2] if days_list else None,
            "days_to_rebirth": [{"bucket": b, "count": n} for b, n in histogram.items()],
            "last_touch": [{"touch": t, "count": n} for t, n in sorted(last_touch.items())],
            "deals": deals,
        },
        # Every deal of each experiment, whatever `since` says: an experiment is bounded by
        # its id, and its windows by the days since each loss.
        "experiments": experiments.experiments_section(
            arms, today.isoformat(),
            {c: s.experiment for c, s in shapes.items() if s.experiment}),
    }


def cadence_shapes(settings: Any, today: date) -> dict[str, CadenceShape]:
    """Per cadence of the configuration: whether it has steps, and the loss day before which
    its horizon is reached."""
    default = settings.defaults.horizon
    return {c.id: CadenceShape(bool(c.steps), (c.horizon or default).subtract_from(today),
                               c.experiment.id if c.experiment else None)
            for c in settings.cadences}


CSV_HEADER = ("section", "cadence", "item", "metric", "value")


def csv_rows(payload: dict[str, Any]) -> list[tuple[object, ...]]:
    """The whole report as one long table (section, cadence, item, metric, value): one value
    per row, so a spreadsheet pivots it any way."""
    rows: list[tuple[object, ...]] = [CSV_HEADER]
    for r in payload["by_cadence"]:
        rows += [("deals", r["cadence"], r["loss_reason"], k, v) for k, v in r.items()
                 if k not in ("cadence", "loss_reason")]
    for r in payload.get("by_step_outcome", []):
        rows += [("steps", r["cadence"], r["step"], k, v) for k, v in r.items()
                 if k not in ("cadence", "step", "skipped_by")]
        rows += [("steps", r["cadence"], r["step"], f"skipped: {k}", v)
                 for k, v in r["skipped_by"].items()]
    for r in payload.get("exits", []):
        rows += [("exits", r["cadence"], k, "deals", v) for k, v in r.items() if k != "cadence"]
    for dimension, values in payload.get("winback_rates", {}).items():
        for r in values:
            for window in (f"{d}d" for d in REBORN_WINDOWS):
                rows += [(f"winback by {DIMENSION_LABELS.get(dimension, dimension)}", "",
                          r["value"], f"{window} {k}", v) for k, v in r[window].items()]
    reborn = payload.get("reborn", {})
    rows += [("days to rebirth", "", b["bucket"], "deals", b["count"])
             for b in reborn.get("days_to_rebirth", [])]
    rows += [("last touch before rebirth", t["touch"].split(" / ", 1)[0],
              t["touch"].split(" / ", 1)[1], "deals", t["count"])
             for t in reborn.get("last_touch", [])]
    rows += [("reborn deal", d["cadence"], d["deal_id"], k, d[k])
             for d in reborn.get("deals", []) for k in ("reason", "lost_on", "reborn_at", "days",
                                                       "last_touch")]
    rows += experiments.csv_rows(payload.get("experiments", []))
    return rows
