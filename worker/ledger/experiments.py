"""The experiments report's ledger side (issue 17): per cadence, experiment and arm, the deals
enrolled, won back, and for each window of days how many have had that long since the loss
(eligible) and how many of those were reborn within it. One grouped read over the covering
index of migration 0010."""

# ruff: noqa: S608 (the SQL is built from worker/ledger/rollups.py's constants, no input)
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Connection, bindparam, text

from worker.ledger.rollups import REBORN_WINDOWS, reborn_within


@dataclass
class ArmCounts:
    """One arm of one experiment of one cadence, over every connection asked for."""

    cadence: str
    experiment: str
    arm: str
    deals: int = 0
    won_back: int = 0
    amount_won_back: float = 0.0
    eligible: dict[int, int] = field(default_factory=lambda: dict.fromkeys(REBORN_WINDOWS, 0))
    reborn: dict[int, int] = field(default_factory=lambda: dict.fromkeys(REBORN_WINDOWS, 0))


def arm_counts(conn: Connection, connections: Sequence[str], today: date) -> list[ArmCounts]:
    """Every arm with at least one enrolled deal, sorted by cadence, experiment, arm. A deal
    counts in a window of W days when its loss day is at least W days before `today`, and as
    reborn in it when it was reborn (reopened, a new deal on the account, a meeting) within W
    days of the loss."""
    if not connections:
        return []
    within = reborn_within("", conn.dialect.name)
    query = text(
        f"SELECT cadence, experiment, arm, day0, {within} AS within, "
        "count(*), sum(CASE WHEN won_back_at IS NOT NULL THEN 1 ELSE 0 END), "
        "sum(CASE WHEN won_back_at IS NOT NULL THEN coalesce(won_back_amount, 0.0) "
        "ELSE 0.0 END) "
        "FROM enrollment WHERE connection IN :connections AND experiment IS NOT NULL "
        "AND arm IS NOT NULL AND cadence IS NOT NULL "
        "GROUP BY cadence, experiment, arm, day0, within"
    ).bindparams(bindparam("connections", expanding=True))
    arms: dict[tuple[str, str, str], ArmCounts] = {}
    for cadence, experiment, arm, day0, bucket, n, won, amount in conn.execute(
            query, {"connections": list(connections)}):
        key = (str(cadence), str(experiment), str(arm))
        counts = arms.setdefault(key, ArmCounts(*key))
        counts.deals += int(n)
        counts.won_back += int(won or 0)
        counts.amount_won_back += float(amount or 0.0)
        if day0 is None:
            continue
        lost = day0 if isinstance(day0, date) else date.fromisoformat(str(day0))
        for window in REBORN_WINDOWS:
            if lost + timedelta(days=window) > today:
                continue
            counts.eligible[window] += int(n)
            if 0 < int(bucket) <= window:
                counts.reborn[window] += int(n)
    return [arms[k] for k in sorted(arms)]
