"""`winback status` and `winback report`: what the ledger knows, for people and scripts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.base import Connector
from worker.ledger import queries
from worker.ledger.activities import activity_counts
from worker.ledger.leases import Leases
from worker.ledger.records import TaskStatus
from worker.ledger.store import Ledger
from worker.sync.refusals import failed_by_reason, reason_of

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


def winback_report(ledger: Ledger, connections: list[str], since: date
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows by (cadence, loss reason) for deals lost since `since`, and task counts by step."""
    rows: dict[tuple[str, str], ReportRow] = {}
    with ledger.engine.connect() as conn:
        for e in queries.enrolled_since(conn, connections, since):
            key = (str(e.cadence), e.loss_reason or "(none)")
            row = rows.setdefault(key, ReportRow(*key))
            row.enrolled += 1
            row.amount_lost += e.amount or 0.0
            if e.reborn_at is not None and e.day0 is not None:
                days = (e.reborn_at.astimezone(UTC).date() - e.day0).days
                for window in REBORN_WINDOWS:
                    if days <= window:
                        row.reborn[window] += 1
            if e.won_back_at is not None:
                row.won_back += 1
                row.amount_won_back += e.won_back_amount or 0.0
        steps: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(
            ("planned", "written", "completed", "cancelled", "failed"), 0))
        for c in queries.step_counts(conn, connections, since):
            entry = steps[(c.cadence.split("@", 1)[0], c.step)]
            entry["planned"] += c.count  # (every task was planned once)
            if c.status in STEP_COLUMNS:
                entry[STEP_COLUMNS[c.status]] += c.count
            if c.status is TaskStatus.WRITTEN and c.completed:
                entry["completed"] += c.count
    by_cadence = [r.as_dict() for _, r in sorted(rows.items())]
    by_step = [{"cadence": c, "step": s, **v} for (c, s), v in sorted(steps.items())]
    return by_cadence, by_step


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
    """Read completion of written, open tasks from the CRM (one lookup per batch of keys)."""
    with ledger.engine.connect() as conn:
        rows = queries.written_open(conn, connection, limit)
    if not rows:
        return 0
    found = connector.find_tasks([key for _, key in rows])
    done = [i for i, key in rows if (ref := found.get(key)) is not None and ref.completed]
    with ledger.write() as conn:
        ledger.mark_completed(conn, done)
    return len(done)
