"""The experiment simulation through the real sync (issue 17): 2,000 lost deals in a CRM, half
drawn into a holdout by the rules; reps complete every post-mortem task winback writes; a deal
whose post-mortem was completed comes back with a known higher probability (the sandbox's
prospect simulator's rule, here in the in-memory CRM to keep the runs fast); 95 days on,
`winback report`'s experiments section counts exactly the deals that came back, per arm,
and its interval of the difference covers the true lift.

`make test` runs one seeded run on SQLite; `--long` runs 50 seeded runs, where the interval
must cover the lift in at least 90% of them and, with no lift, call a difference in at most
10%."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.unit.experiment_sim import uniform
from tests.unit.harness import World
from worker.ledger.schema import enrollment
from worker.views.reports import outcome_report

BASE_RATE = 0.10
DEALS = 2000
LOST = date(2027, 3, 1)

RULES = """cadences:
  - id: lost-to-competitor
    steps:
      - {{id: post-mortem, at: 14d, channel: call}}
    experiment: {{id: {id}, holdout: 50%}}
"""


def simulate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, lift: float
             ) -> dict[str, Any]:
    """One run; returns the report's experiment entry and the truth it must match."""
    world = World(tmp_path, f"sqlite:///{tmp_path / f'ledger-{seed}.db'}", monkeypatch,
                  extra=RULES.format(id=f"pm-{seed}"),
                  start=datetime(2027, 3, 1, 15, tzinfo=UTC))
    try:
        for n in range(DEALS):
            world.lost(f"D{n}", account=f"A{n}", closed=LOST)
        world.tick()
        world.advance(days=8)  # the post-mortems (day 14, written a lead time before)
        world.tick()
        treated = set()
        for stored in world.crm.admin_tasks():
            world.crm.admin_complete_task(stored.crm_id)  # the reps do every one
            treated.add(stored.draft.deal_id)
        world.advance(days=22)  # day 30: the prospects decide
        truth: Counter[str] = Counter()
        with world.service.ledger.engine.connect() as conn:
            arms = dict(conn.execute(select(enrollment.c.deal_id, enrollment.c.arm)).all())
        for n in range(DEALS):
            deal_id = f"D{n}"
            rate = BASE_RATE + lift if deal_id in treated else BASE_RATE
            if uniform(seed, deal_id, "reborn") < rate:
                world.crm.admin_update_deal(deal_id, is_closed=False)
                truth[arms[deal_id]] += 1
        world.tick()
        world.advance(days=65)  # day 95: the 90-day window has passed for every deal
        world.tick()
        report = outcome_report(world.service.ledger, ["crm"], LOST, world.now.date(), {})
    finally:
        world.close()
    (entry,) = report["experiments"]
    assert not any(arms[f"D{n}"] == "holdout" for n in range(DEALS) if f"D{n}" in treated), \
        "a holdout deal got a task"
    return {"entry": entry, "truth": truth, "arms": Counter(arms.values())}


def _cell(entry: dict[str, Any], arm: str) -> dict[str, Any]:
    return dict(next(a for a in entry["arms"] if a["arm"] == arm)["windows"]["90"])


def test_one_seeded_run_counts_every_reborn_deal_per_arm_and_covers_the_lift(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lift = 0.08
    run = simulate(tmp_path, monkeypatch, seed=1, lift=lift)
    entry = run["entry"]
    assert entry["control"] == "holdout"
    for arm in ("holdout", "base"):
        cell = _cell(entry, arm)
        assert cell["eligible"] == run["arms"][arm]  # every deal has had its 90 days
        assert cell["reborn"] == run["truth"][arm]
    assert 900 < run["arms"]["holdout"] < 1100
    base = _cell(entry, "base")
    assert base["diff_ci_low"] <= lift <= base["diff_ci_high"]
    assert entry["verdict_window"] == 90  # (only 90 days have passed: 180 and 365 are empty)
    assert entry["verdict"].startswith("base beats holdout by")


RUNS = 50


@pytest.mark.slow
@pytest.mark.parametrize("lift", [0.05, 0.0])
def test_over_50_seeded_runs_through_the_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              lift: float) -> None:
    cells = [_cell(simulate(tmp_path, monkeypatch, seed, lift)["entry"], "base")
             for seed in range(1000, 1000 + RUNS)]
    if lift:
        covered = sum(c["diff_ci_low"] <= lift <= c["diff_ci_high"] for c in cells)
        assert covered >= 0.9 * RUNS, f"{covered}/{RUNS} intervals covered the lift"
    else:
        called = sum(c["diff_ci_low"] > 0 or c["diff_ci_high"] < 0 for c in cells)
        assert called <= 0.1 * RUNS, f"{called}/{RUNS} runs called a difference"
