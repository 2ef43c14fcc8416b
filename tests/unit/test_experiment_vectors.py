"""The experiment plan vectors (issue 17 part 1): `winback plan` over tests/fixtures/
plan-vectors/experiments/ must give exactly expected.jsonl (README.md there pins each rule);
arms are stable across rule edits, change with the experiment id, and honour the weights."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.models import Deal, Owner
from worker.cadence.engine import Planner
from worker.cli.main import app
from worker.settings.loader import load_config

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "plan-vectors" / "experiments"
NOW = "2027-12-01T15:00:00Z"
MOMENT = datetime(2027, 12, 1, 15, tzinfo=UTC)
IGNORED = ("key", "occurrence")
EXPERIMENT = "postmortem-timing-2027q1"


def _lines(text: str) -> list[str]:
    return sorted(json.dumps({k: v for k, v in json.loads(line).items() if k not in IGNORED},
                             sort_keys=True)
                  for line in text.splitlines() if line.strip())


def _plan(config: Path, deals: Path = VECTORS / "deals.jsonl") -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["plan", str(config), "--deals", str(deals), "--now", NOW,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _arms(rows: list[dict[str, object]]) -> dict[object, object]:
    return {r["deal_id"]: r.get("arm") for r in rows}


def _reference_arm(deal_id: str, experiment: str = EXPERIMENT) -> str:
    """The README's rule, written out independently of the planner."""
    digest = hashlib.blake2b(f"demo-sf\x00{deal_id}\x00{experiment}".encode(), digest_size=8)
    point = int.from_bytes(digest.digest(), "big") / 2**64 * 100
    return "holdout" if point < 20 else "base" if point < 60 else "early"


def _edited(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = (VECTORS / "winback.yaml").read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "winback.yaml"
    path.write_text(text)
    return path


def test_experiment_vectors_produce_exactly_the_expected_lines() -> None:
    got = _lines("\n".join(json.dumps(r) for r in _plan(VECTORS / "winback.yaml")))
    expected = _lines((VECTORS / "expected.jsonl").read_text())
    assert len(expected) == 60
    assert [r for r in expected if r not in got] == []
    assert [r for r in got if r not in expected] == []


def test_the_arms_are_the_readme_hash() -> None:
    arms = _arms(_plan(VECTORS / "winback.yaml"))
    assert arms.pop("P01") is None
    assert arms == {d: _reference_arm(str(d)) for d in arms}
    assert set(arms.values()) == {"holdout", "base", "early"}


def test_rule_edits_do_not_move_a_deal_to_another_arm(tmp_path: Path) -> None:
    before = _arms(_plan(VECTORS / "winback.yaml"))
    edited = _edited(tmp_path, ('{id: call, at: 14d, subject: "Call"}',
                                '{id: call, at: 21d, subject: "Call {{ deal.name }}"}'),
                     ("post-mortem: {at: 10d, priority: high}", "post-mortem: {at: 7d}"),
                     ("grace: 7d", "grace: 3d"), ("horizon: 1y", "horizon: 2y"))
    rows = _plan(edited)
    assert _arms(rows) == before
    early = [r for r in rows if r.get("arm") == "early" and r.get("step") == "post-mortem"]
    assert early and all(r["due_date"] == "2027-12-06" for r in early)  # (the edit applied)


def test_a_new_experiment_id_draws_the_deals_again(tmp_path: Path) -> None:
    edited = _edited(tmp_path, (f"id: {EXPERIMENT}", "id: postmortem-timing-2027q2"))
    before, after = _arms(_plan(VECTORS / "winback.yaml")), _arms(_plan(edited))
    assert after == {d: None if d == "P01" else _reference_arm(str(d), "postmortem-timing-2027q2")
                     for d in after}
    assert sum(before[d] != after[d] for d in before) >= 5


def _deal(number: int) -> Deal:
    return Deal(id=f"D{number:05d}", name=f"Deal {number}", closed_at=date(2027, 11, 29),
                is_closed=True, is_won=False, owner=Owner(id="U1", active=True))


def test_weights_are_honoured_within_sampling_error_over_10000_deals() -> None:
    planner = Planner(load_config(VECTORS / "winback.yaml", require_env=False))
    cadence = planner.cadence("lost")
    assert cadence is not None
    counts = Counter(str((planner.arm(f"D{n:05d}", cadence) or ("", ""))[1])
                     for n in range(10_000))
    for arm, share in (("holdout", 0.2), ("base", 0.4), ("early", 0.4)):
        sigma = math.sqrt(10_000 * share * (1 - share))
        assert abs(counts[arm] - 10_000 * share) < 4 * sigma, (arm, counts)


def test_the_stored_arm_wins_while_the_experiment_id_stays() -> None:
    planner = Planner(load_config(VECTORS / "winback.yaml", require_env=False))
    deal = _deal(1)
    drawn = planner.plan(deal, MOMENT)
    other = "holdout" if drawn.arm != "holdout" else "early"
    kept = planner.plan(deal, MOMENT, arm=(EXPERIMENT, other))
    assert (kept.experiment, kept.arm) == (EXPERIMENT, other)
    assert (kept.tasks == ()) == (other == "holdout")
    stale = planner.plan(deal, MOMENT, arm=("an-older-experiment", other))
    assert stale.arm == drawn.arm  # (a new id: drawn again, the stored arm is of the old one)


@pytest.mark.parametrize(("old", "new", "message", "line"), [
    ("base_weight: 40", "base_weight: 50", "add up to 110%, not 100%", 27),
    ("post-mortem: {at: 10d, priority: high}", "postmortem: {at: 10d}",
     "overrides step 'postmortem', which this cadence does not have", 30),
    ("check-in: {every: 45d}", "check-in: {at: 45d}",
     "sets 'at' on step 'check-in', which is an 'every' step", 30),
    ("{weight: 40", "{weight: 0", "weight: expected greater than 0", 30),
    ("holdout: 20%", "holdout: 20 percent", "is not a percentage", 28),
    ("check-in: {every: 45d}", "check-in: {until: 30d}",
     "variant 'early': step 'check-in' with its overrides: until (30d) is before from", 21),
    ("early: {weight", "base: {weight", "a variant cannot be named 'base'", 27),
])
def test_validate_points_at_the_bad_experiment_line(tmp_path: Path, old: str, new: str,
                                                    message: str, line: int) -> None:
    result = CliRunner().invoke(app, ["validate", str(_edited(tmp_path, (old, new)))])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert message in text, text
    assert f"winback.yaml:{line}:" in text, text


@pytest.mark.parametrize(("on_meeting", "stop"), [("stop", "meeting"), ("notify", None)])
def test_a_holdout_deal_is_stopped_by_a_meeting_but_gets_no_notice(
        tmp_path: Path, on_meeting: str, stop: str | None) -> None:
    from connectors.models import Activity, ActivityKind
    from worker.cadence.activity import DealActivity

    config = _edited(tmp_path, ("cadences:\n",
                                f"stop: {{on_meeting: {on_meeting}}}\ncadences:\n"))
    planner = Planner(load_config(config, require_env=False))
    deal = _deal(1)
    meeting = Activity(id="M1", kind=ActivityKind.MEETING,
                       at=datetime(2027, 11, 30, 15, tzinfo=UTC), deal_id=deal.id)
    plan = planner.plan(deal, MOMENT, arm=(EXPERIMENT, "holdout"),
                        activity=DealActivity(activities=(meeting,)))
    assert (plan.arm, plan.stop, plan.tasks) == ("holdout", stop, ())
    followed = planner.plan(deal, MOMENT, arm=(EXPERIMENT, "base"),
                            activity=DealActivity(activities=(meeting,)))
    assert followed.stop == stop and (stop is not None or followed.tasks)
