"""The per-owner daily cap (worker/cadence/capacity.py), its configuration, and fallback teams
(issue 14 parts 1-2), one behaviour per test."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.models import Owner, Priority
from tests.unit.planning import BASE, config_from, deal
from worker.cadence.capacity import CapItem, apply_cap
from worker.cadence.engine import Planner
from worker.cadence.owners import team_member
from worker.settings import load_config
from worker.settings.errors import ConfigErrors

NOW = datetime(2027, 12, 1, 15, tzinfo=UTC)
MON = date(2027, 12, 6)
STEP = "cadences:\n  - id: c\n    steps:\n      - {id: s, at: 14d}\n"


def _weekdays(owner: str, day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _item(key: str, due: date = MON, priority: Priority = Priority.NORMAL, owner: str = "U1",
          latest: date | None = None) -> CapItem:
    return CapItem(key, owner, priority, due, latest or due + timedelta(days=7))


def test_written_tasks_take_their_day_and_never_move() -> None:
    """Two already written on Monday with a cap of 3: one more fits, the next goes Tuesday."""
    result = apply_cap([_item("a"), _item("b")], lambda o: 3, _weekdays, {("U1", MON): 2})
    assert dict(result.placed) == {"a": MON, "b": MON + timedelta(days=1)}


def test_the_order_is_priority_then_due_date_then_key_whatever_the_input_order() -> None:
    items = [_item("k1"), _item("k0", due=MON + timedelta(days=1)), _item("k2"),
             _item("k9", priority=Priority.HIGH), _item("k3", priority=Priority.LOW)]
    expected = None
    for seed in range(20):
        random.Random(seed).shuffle(items)
        placed = dict(apply_cap(items, lambda o: 1, _weekdays).placed)
        expected = expected or placed
        assert placed == expected
    assert expected == {"k9": MON, "k1": MON + timedelta(days=1), "k2": MON + timedelta(days=2),
                        "k0": MON + timedelta(days=3), "k3": MON + timedelta(days=4)}


def test_the_next_working_day_skips_the_weekend_and_the_latest_day_is_a_hard_limit() -> None:
    friday = date(2027, 12, 10)
    result = apply_cap([_item("a", friday), _item("b", friday),
                        _item("c", friday, latest=friday + timedelta(days=2))],
                       lambda o: 1, _weekdays)
    assert dict(result.placed) == {"a": friday, "b": friday + timedelta(days=3)}
    assert result.skipped == {"c"}


def test_no_cap_keeps_every_day_and_owners_are_capped_separately() -> None:
    result = apply_cap([_item("a"), _item("b"), _item("c", owner="U2"), _item("d", owner="U2")],
                       lambda o: None if o == "U1" else 1, _weekdays)
    assert dict(result.placed) == {"a": MON, "b": MON, "c": MON, "d": MON + timedelta(days=1)}


def _config(tmp_path: Path, defaults: str = "", connection: str = "") -> Planner:
    text = BASE.replace("  horizon: 3y\n", "  horizon: 3y\n" + defaults) + connection + STEP
    path = tmp_path / "winback.yaml"
    path.write_text(text)
    return Planner(load_config(path, env={}))


def test_the_cap_is_the_owner_override_then_the_connection_then_defaults(tmp_path: Path
                                                                          ) -> None:
    planner = _config(tmp_path, "  max_tasks_per_owner_per_day: 6\n",
                      "    max_tasks_per_owner_per_day: 4\n    owners:\n"
                      "      U9: {max_tasks_per_day: 1}\n")
    assert (planner.daily_cap("U9"), planner.daily_cap("U1")) == (1, 4)
    assert _config(tmp_path, "  max_tasks_per_owner_per_day: 6\n").daily_cap("U1") == 6
    assert _config(tmp_path).daily_cap("U1") is None and not _config(tmp_path).has_cap


def test_a_cap_of_zero_is_an_error_that_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        config_from(tmp_path, STEP, "    max_tasks_per_owner_per_day: 0\n")
    text = str(caught.value)
    assert "winback.yaml:" in text and "max_tasks_per_owner_per_day" in text
    assert "greater than or equal to 1" in text


def test_the_cap_is_in_the_fingerprint_only_when_set(tmp_path: Path) -> None:
    without = Planner(config_from(tmp_path, STEP)).rule_version("c", deal())
    with_cap = Planner(config_from(tmp_path, STEP, "    max_tasks_per_owner_per_day: 8\n"))
    other = Planner(config_from(tmp_path, STEP, "    max_tasks_per_owner_per_day: 9\n"))
    assert len({without, with_cap.rule_version("c", deal()),
                other.rule_version("c", deal())}) == 3
    assert with_cap.plan_inputs("c", ("U1", True, None, None, None)).inputs["daily_cap"] == 8


def _team(tmp_path: Path, members: str) -> Planner:
    path = tmp_path / "winback.yaml"
    path.write_text(BASE.replace('fallback_owner: "FALLBACK"', f"fallback_owner: [{members}]")
                    + STEP)
    return Planner(load_config(path, env={}))


def test_a_fallback_team_shares_the_deals_evenly_and_each_deal_stays_with_its_member(
        tmp_path: Path) -> None:
    ids = [f"D{n}" for n in range(3000)]
    chosen = {i: team_member(i, ["T1", "T2", "T3"]) for i in ids}
    counts = {m: sum(1 for c in chosen.values() if c == m) for m in ("T1", "T2", "T3")}
    assert all(900 <= n <= 1100 for n in counts.values()), counts
    without_t2 = {i: team_member(i, ["T1", "T3"]) for i in ids}
    assert all(without_t2[i] == m for i, m in chosen.items() if m != "T2")  # only T2's move
    assert {team_member(i, ["T3", "T2", "T1"]) for i in ids[:50]} <= {"T1", "T2", "T3"}
    assert all(team_member(i, ["T3", "T1", "T2"]) == chosen[i] for i in ids)  # order-free


def test_a_team_member_gets_the_inactive_owners_deal_and_the_fingerprint_is_the_teams(
        tmp_path: Path) -> None:
    planner = _team(tmp_path, "T1, T2, T3")
    gone = Owner(id="GONE", active=False)
    plans = [planner.plan(deal(id=f"D{n}", owner=gone, closed_at=date(2027, 11, 29)), NOW)
             for n in range(30)]
    owners = [p.tasks[0].owner_id for p in plans]
    assert set(owners) == {"T1", "T2", "T3"} and all(p.owner_fallback for p in plans)
    assert owners == [team_member(f"D{n}", ["T1", "T2", "T3"]) for n in range(30)]
    versions = {planner.rule_version("c", deal(id=f"D{n}", owner=gone)) for n in range(30)}
    assert len(versions) == 1
    assert planner.plan_inputs("c", ("GONE", False, None, None, None)).inputs["owner"] == \
        ["T1", "T2", "T3"]
    assert planner.fallback_for("D1", frozenset({owners[1]})) in {"T1", "T2", "T3"} - {owners[1]}


def test_a_fallback_team_listing_an_owner_twice_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "winback.yaml"
    path.write_text(BASE.replace('fallback_owner: "FALLBACK"',
                                 "fallback_owner:\n      - T1\n      - T2\n      - T1") + STEP)
    with pytest.raises(ConfigErrors) as caught:
        load_config(path, env={})
    text = str(caught.value)
    assert f"{path}:16:9:" in text and "fallback_owner lists 'T1' twice (already on line 14)" \
        in text
