"""A seeded experiment with a known true lift, for the simulation tests (issue 17): deals drawn
into arms by winback's own assignment (worker/cadence/arms.py), each reborn with the rate
of its arm (the holdout's `base`, the treated arms' `base + lift`: reps completed every task,
as the sandbox's prospect simulator can be told), the enrollments written to a real ledger
and `winback report`'s experiments section read back."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from worker.cadence.arms import assign_arm
from worker.ledger import rollups
from worker.ledger.experiments import arm_counts
from worker.ledger.records import EnrollmentStatus, StopReason
from worker.ledger.schema import enrollment
from worker.settings.experiments import HOLDOUT, Experiment
from worker.views.experiments import experiments_section

TODAY = date(2028, 6, 1)
LOST_FROM = date(2027, 1, 4)  # every loss a year and more before TODAY: all windows elapsed


def uniform(*parts: object) -> float:
    """A point of [0, 1) from a hash of `parts` (no shared random state)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def run(engine: Engine, seed: int, *, deals: int = 2000, base: float = 0.10,
        lift: float = 0.05, holdout: float = 50.0, connection: str = "sim"
        ) -> dict[str, Any]:
    """One seeded experiment: returns its report entry. The experiment id carries the seed,
    so every run draws its deals into arms afresh."""
    experiment = Experiment.model_validate({"id": f"sim-{seed}", "holdout": holdout})
    rows = []
    for n in range(deals):
        deal_id = f"{seed}-{n}"
        arm = assign_arm(connection, deal_id, experiment)
        rate = base if arm == HOLDOUT else base + lift
        lost = LOST_FROM + timedelta(days=n % 120)
        reborn = uniform(seed, deal_id, "reborn") < rate
        reborn_at = (datetime.combine(lost, datetime.min.time(), UTC)
                     + timedelta(days=20 + int(uniform(seed, deal_id, "day") * 60))
                     if reborn else None)
        rows.append({"connection": connection, "deal_id": deal_id, "cycle": 1,
                     "cadence": "standard", "status": (EnrollmentStatus.STOPPED if reborn
                                                       else EnrollmentStatus.FINISHED),
                     "stop_reason": StopReason.REOPENED if reborn else None,
                     "experiment": experiment.id, "arm": arm, "amount": 1000.0, "day0": lost,
                     "deal_json": json.loads("{}"),
                     "enrolled_at": datetime.combine(lost, datetime.min.time(), UTC),
                     "reborn_at": reborn_at})
    with engine.begin() as conn, rollups.deferred(conn):  # (counted once, as a sync does)
        conn.execute(insert(enrollment), rows)
        rollups.add_new(conn, connection, [str(r["deal_id"]) for r in rows])
    with engine.connect() as conn:
        counts = [c for c in arm_counts(conn, [connection], TODAY) if c.experiment == experiment.id]
    (entry,) = experiments_section(counts, TODAY.isoformat(), {"standard": experiment.id})
    return entry


def treated(entry: dict[str, Any]) -> dict[str, Any]:
    """The verdict window's cell of the arm compared with the holdout."""
    window = str(entry["verdict_window"] or 365)
    (arm,) = [a for a in entry["arms"] if a["arm"] != entry["control"]]
    return dict(arm["windows"][window])
