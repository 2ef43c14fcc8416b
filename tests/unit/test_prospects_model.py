"""The CRM-independent prospect simulator (sandbox/prospects.py): configuration, the hashed
draws, the decision rule, and a run against an in-memory CRM."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sandbox.prospects import (
    Config,
    ConfigError,
    LostDeal,
    Simulator,
    TaskView,
    decide,
    decision_days,
    parse_config,
    probability,
    uniform,
)

N = 10_000


def _within(share: float, p: float, n: int) -> bool:
    """Within 4 standard errors of p (fails by chance about once in 16,000 seeds)."""
    return abs(share - p) <= 4 * math.sqrt(p * (1 - p) / n)


def test_defaults_and_round_trip() -> None:
    config = parse_config({})
    assert config == Config() == parse_config(None)
    assert config.to_json() == {"seed": 0, "base": 0.1, "completed": {"post-mortem": 0.2},
                                "days": [30, 80], "new_deal_share": 0.0,
                                "reps": {"complete": 1.0, "after_days": 1}}
    body = {"seed": 5, "base": 0, "completed": {"Post-mortem": 1, "call": 0.5},
            "days": [3, 3], "new_deal_share": 0.25, "reps": {"complete": 0.5, "after_days": 0}}
    assert parse_config(body).to_json() == {**body, "base": 0.0,
                                            "completed": {"Post-mortem": 1.0, "call": 0.5},
                                            "reps": {"complete": 0.5, "after_days": 0}}
    assert parse_config({"reps": {"after_days": 4}}).rep_complete == 1.0  # partial reps


@pytest.mark.parametrize(("body", "name"), [
    ({"seed": "1"}, "seed"), ({"seed": True}, "seed"), ({"base": 1.01}, "base"),
    ({"base": float("nan")}, "base"), ({"completed": {"": 0.5}}, "completed"),
    ({"completed": {"a": 3}}, "completed.a"), ({"completed": "a"}, "completed"),
    ({"days": [5, 4]}, "days"), ({"days": [-1, 4]}, "days"), ({"days": [1, 2, 3]}, "days"),
    ({"new_deal_share": None}, "new_deal_share"), ({"reps": []}, "reps"),
    ({"reps": {"complete": -1}}, "reps.complete"), ({"reps": {"after_days": 0.5}},
                                                    "reps.after_days"),
    ({"reps": {"x": 1}}, "reps.x"), ({"sed": 1}, "sed"), ("text", "body"),
])
def test_bad_fields_are_named(body: Any, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(body)
    assert caught.value.field == name and str(caught.value).startswith(f"{name}: ")


def test_draws_are_fixed_by_seed_key_and_purpose() -> None:
    assert uniform(1, "006A", "reborn") == uniform(1, "006A", "reborn")
    values = {uniform(s, k, p) for s in (1, 2) for k in ("006A", "006B")
              for p in ("reborn", "days")}
    assert len(values) == 8 and all(0 <= v < 1 for v in values)
    config = parse_config({"days": [30, 32]})
    days = [decision_days(config, str(i)) for i in range(N)]
    assert set(days) == {30, 31, 32}
    assert all(_within(days.count(d) / N, 1 / 3, N) for d in (30, 31, 32))
    assert decision_days(parse_config({"days": [7, 7]}), "x") == 7


def test_the_rule_takes_the_best_matching_completed_step_else_base() -> None:
    config = parse_config({"base": 0.1, "completed": {"post-mortem": 0.2, "CALL": 0.5,
                                                      "never": 0.05}})
    assert probability(config, []) == (0.1, [])
    assert probability(config, ["Send recap"]) == (0.1, [])
    assert probability(config, ["Post-Mortem with Cy"]) == (0.2, ["Post-Mortem with Cy"])
    assert probability(config, ["Post-mortem call", "Send recap", "Call back"]) == (
        0.5, ["Post-mortem call", "Call back"])
    assert probability(config, ["never again"]) == (0.05, ["never again"])  # matched: not base
    decision = decide(config, "006X", date(2024, 5, 1), ["Call back"])
    assert decision.probability == 0.5 and decision.completed == ["Call back"]
    assert decision.decided_on == date(2024, 5, 1) + timedelta(days=decision_days(config,
                                                                                  "006X"))


def test_over_ten_thousand_deals_the_reborn_share_is_the_probability() -> None:
    lost = date(2024, 1, 1)
    base = parse_config({"seed": 3, "base": 0.1, "new_deal_share": 0.25})
    decisions = [decide(base, f"deal-{i}", lost, []) for i in range(N)]
    reborn = [d for d in decisions if d.reborn]
    assert _within(len(reborn) / N, 0.1, N)
    assert _within(sum(d.how == "new_deal" for d in reborn) / len(reborn), 0.25, len(reborn))
    assert {d.how for d in decisions if not d.reborn} == {None}
    lifted = [decide(base, f"deal-{i}", lost, ["Post-mortem"]) for i in range(N)]
    assert _within(sum(d.reborn for d in lifted) / N, 0.2, N)
    # common random numbers: every deal reborn at base is reborn with the lift too
    assert {d.deal for d in reborn} <= {d.deal for d in lifted if d.reborn}
    other = [decide(parse_config({"seed": 4}), f"deal-{i}", lost, []) for i in range(N)]
    assert [d.reborn for d in other] != [d.reborn for d in decisions]


@dataclass
class FakeCrm:
    """Lost deals and winback tasks in memory, recording the writes."""

    lost: dict[str, date]
    tasks: dict[str, tuple[str, str, date, datetime | None]]  # id: deal, subject, due, done
    account: bool = True
    store: object = field(default_factory=object)
    writes: list[tuple[str, str]] = field(default_factory=list)

    def data(self) -> object:
        return self.store

    def lost_deals(self) -> list[LostDeal]:
        return [LostDeal(i, d) for i, d in self.lost.items()]

    def _view(self, task_id: str) -> TaskView:
        _, subject, due, done = self.tasks[task_id]
        return TaskView(task_id, subject, due, done, datetime(2024, 1, 1, tzinfo=UTC))

    def open_winback_tasks(self) -> list[TaskView]:
        return [self._view(i) for i, t in self.tasks.items() if t[3] is None]

    def winback_tasks(self, deal_id: str) -> list[TaskView]:
        return [self._view(i) for i, t in self.tasks.items() if t[0] == deal_id]

    def complete_task(self, task_id: str, at: datetime) -> None:
        self.tasks[task_id] = (*self.tasks[task_id][:3], at)
        self.writes.append(("complete", task_id))

    def reopen(self, deal_id: str) -> None:
        del self.lost[deal_id]
        self.writes.append(("reopen", deal_id))

    def new_deal(self, deal_id: str, close_on: date) -> str | None:
        self.writes.append(("new_deal", deal_id))
        return f"new-{deal_id}" if self.account else None


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _world() -> FakeCrm:
    lost = {f"d{i}": date(2024, 5, 1) + timedelta(days=i % 9) for i in range(200)}
    tasks: dict[str, tuple[str, str, date, datetime | None]] = {
        f"t{i}": (f"d{i}", "Post-mortem", lost[f"d{i}"] + timedelta(days=i % 4), None)
        for i in range(200)}
    return FakeCrm(lost, tasks)


def _simulate(steps: list[datetime]) -> tuple[list[dict[str, Any]], set[str]]:
    crm = _world()
    clock = Clock(steps[0])
    sim = Simulator(crm, threading.RLock(), clock)
    sim.config = parse_config({"seed": 9, "base": 0.1, "completed": {"post": 0.6},
                               "days": [1, 12], "new_deal_share": 0.5,
                               "reps": {"complete": 0.5, "after_days": 2}})
    for step in steps:
        clock.now = step
        sim.run()
    decided = sorted((d.to_json() for d in sim.decided.values()), key=lambda d: d["deal"])
    return decided, {i for i, t in crm.tasks.items() if t[3] is not None}


def test_a_run_is_the_same_however_the_clock_is_stepped() -> None:
    start = datetime(2024, 5, 1, 6, tzinfo=UTC)
    big = _simulate([start + timedelta(days=60)])
    hourly = _simulate([start + timedelta(hours=h) for h in range(0, 60 * 24, 7)])
    assert big == hourly
    decided, done = big
    assert len(decided) == 200 and 60 < len(done) < 140
    assert {d["how"] for d in decided} == {None, "reopen", "new_deal"}
    assert all(d["probability"] == (0.6 if d["completed"] else 0.1) for d in decided)


def test_reps_complete_at_nine_after_the_due_day_and_deals_are_decided_once() -> None:
    tasks: dict[str, tuple[str, str, date, datetime | None]] = {
        "t": ("d", "Post-mortem", date(2024, 5, 3), None)}
    crm = FakeCrm({"d": date(2024, 5, 1)}, tasks, account=False)
    clock = Clock(datetime(2024, 5, 4, 23, tzinfo=UTC))
    sim = Simulator(crm, threading.RLock(), clock)
    sim.run()  # no configuration: nothing happens
    sim.config = parse_config({"base": 0.0, "completed": {"post": 1.0}, "days": [3, 3],
                               "new_deal_share": 1.0, "reps": {"after_days": 1}})
    sim.run()
    # reps first (due 05-03 + 1 day <= 05-04), then the deal decided on 05-04 counts the task
    assert crm.writes == [("complete", "t"), ("new_deal", "d"), ("reopen", "d")]
    assert crm.tasks["t"][3] == datetime(2024, 5, 4, 9, tzinfo=UTC)
    assert sim.decided["d"].how == "reopen"  # a new deal was asked for: no account
    assert sim.decided["d"].completed == ["Post-mortem"]
    crm.lost["d"] = date(2024, 5, 1)  # lost again: still decided once
    clock.now += timedelta(days=30)
    sim.run()
    assert len(crm.writes) == 3 and sim.snapshot()["reborn"] == 1
    crm.store = object()  # new data (a seed that replaced it): draws and decisions forgotten
    sim.run()
    assert sim.snapshot()["decided"][0]["deal"] == "d" and len(crm.writes) == 5
