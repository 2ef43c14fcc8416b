"""The shared plan vectors: `winback plan` must produce exactly the expected rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.main import app

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "plan-vectors"
COMPARED = ("deal_id", "cadence", "step", "contact_id", "due_date", "remind_at", "create_on",
            "owner_id", "channel", "priority", "subject")
NOW = "2027-11-12T14:00:00Z"


def _rows(text: str) -> list[tuple[object, ...]]:
    return sorted(tuple(json.loads(line)[k] for k in COMPARED) for line in text.splitlines()
                  if line.strip())


def _expected() -> list[tuple[object, ...]]:
    return _rows((VECTORS / "expected.jsonl").read_text())


def test_plan_vectors_produce_exactly_the_expected_rows() -> None:
    """Every expected row is planned, nothing else is, for all six edge-case deals."""
    result = CliRunner().invoke(app, ["plan", str(VECTORS / "winback.yaml"), "--deals",
                                      str(VECTORS / "deals.jsonl"), "--now", NOW,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    got = _rows(result.stdout)
    expected = _expected()
    assert len(expected) == 60
    assert [r for r in expected if r not in got] == []
    assert [r for r in got if r not in expected] == []


def test_plan_vectors_hold_under_other_host_time_zones() -> None:
    """The plan does not depend on the host's TZ: the real CLI in three zones gives one answer."""
    outputs = set()
    for tz in ("UTC", "Pacific/Kiritimati", "America/Adak"):
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "plan", str(VECTORS / "winback.yaml"), "--deals",
             str(VECTORS / "deals.jsonl"), "--now", NOW, "--format", "json"],
            capture_output=True, text=True, env={"TZ": tz, "PATH": "/usr/bin:/bin"}, check=True)
        outputs.add(proc.stdout)
    assert len(outputs) == 1
    assert _rows(outputs.pop()) == _expected()


def test_plan_keys_are_unique_and_stable_across_runs() -> None:
    """Keys are unique within a plan and identical when planned again."""
    args = ["plan", str(VECTORS / "winback.yaml"), "--deals", str(VECTORS / "deals.jsonl"),
            "--now", NOW, "--format", "json"]
    first = [json.loads(x)["key"] for x in CliRunner().invoke(app, args).stdout.splitlines()]
    second = [json.loads(x)["key"] for x in CliRunner().invoke(app, args).stdout.splitlines()]
    assert len(first) == len(set(first)) == 60
    assert first == second
