"""The activity plan vectors (issue 13): `winback plan` with activities, completions and
written tasks in the deals file must give exactly tests/fixtures/plan-vectors/activity/
expected.jsonl (README.md there pins each rule), and `stop.on_meeting` changes only the
meeting deal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.main import app

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "plan-vectors" / "activity"
NOW = "2027-12-01T15:00:00Z"
IGNORED = ("key", "occurrence")  # the implementation's own (as in the shared vectors)


def _lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.strip():
            row = {k: v for k, v in json.loads(line).items() if k not in IGNORED}
            out.append(json.dumps(row, sort_keys=True))
    return sorted(out)


def _plan(config: Path) -> list[str]:
    result = CliRunner().invoke(app, ["plan", str(config), "--deals",
                                      str(VECTORS / "deals.jsonl"), "--now", NOW,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    return _lines(result.stdout)


def _expected() -> list[str]:
    return _lines((VECTORS / "expected.jsonl").read_text())


def test_activity_vectors_produce_exactly_the_expected_lines() -> None:
    """Every expected line (planned, waiting, skipped, stopped) and nothing else."""
    got, expected = _plan(VECTORS / "winback.yaml"), _expected()
    assert len(expected) == 72
    assert [r for r in expected if r not in got] == []
    assert [r for r in got if r not in expected] == []


def test_activity_vectors_hold_under_another_host_time_zone() -> None:
    """Completion and activity dates are the owner's, not the host's."""
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "plan", str(VECTORS / "winback.yaml"), "--deals",
         str(VECTORS / "deals.jsonl"), "--now", NOW, "--format", "json"],
        capture_output=True, text=True, env={"TZ": "Pacific/Kiritimati", "PATH": "/usr/bin:/bin"},
        check=True)
    assert _lines(proc.stdout) == _expected()


def _variant(tmp_path: Path, on_meeting: str) -> Path:
    text = (VECTORS / "winback.yaml").read_text()
    assert "on_meeting: notify" in text
    path = tmp_path / "winback.yaml"
    path.write_text(text.replace("on_meeting: notify", f"on_meeting: {on_meeting}"))
    return path


def test_on_meeting_ignore_drops_only_the_notice(tmp_path: Path) -> None:
    notice = [r for r in _expected() if '"step": "notify"' in r]
    assert len(notice) == 1 and '"deal_id": "M1"' in notice[0]
    assert _plan(_variant(tmp_path, "ignore")) == [r for r in _expected() if r not in notice]


def test_on_meeting_stop_stops_the_meeting_deal_as_reborn(tmp_path: Path) -> None:
    got = _plan(_variant(tmp_path, "stop"))
    assert [r for r in got if '"deal_id": "M1"' not in r] == \
        [r for r in _expected() if '"deal_id": "M1"' not in r]
    stopped = [json.loads(r) for r in got if '"deal_id": "M1"' in r]
    assert stopped == [{"status": "stopped", "deal_id": "M1", "cadence": "plain",
                        "stop": "meeting", "activity": {"kind": "meeting", "id": "MTG-1",
                                                        "at": "2027-11-26T19:00:00Z"},
                        "reason": "stopped as reborn (stop.on_meeting: stop): meeting MTG-1 "
                                  "on 2027-11-26 after the loss"}]


def test_the_html_timeline_shows_waiting_moved_and_skipped_steps(tmp_path: Path) -> None:
    target = tmp_path / "plan.html"
    result = CliRunner().invoke(app, ["plan", str(VECTORS / "winback.yaml"), "--deals",
                                      str(VECTORS / "deals.jsonl"), "--now", NOW,
                                      "--format", "html", "-o", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text()
    assert "waiting for a completion in 2 deal(s)" in page  # wait-forever: A8, A9
    assert "Waiting steps:<ul><li>follow-up (K2): waiting for debrief" in page
    assert "skip_if: call CALL-1 logged 2027-11-22, within 2w before the due date" in page
    assert ("Moved steps:<ul><li>check-in #1 due 2027-12-10 instead of 2027-12-06: paused "
            "until 2027-12-10") in page


def test_schema_deals_prints_the_deals_file_line_schema() -> None:
    result = CliRunner().invoke(app, ["schema", "--deals"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["title"] == "winback plan --deals: one line"
    assert {"activities", "completed", "written", "opted_out", "paused_until"} <= \
        set(schema["properties"])


def test_a_bad_activity_in_the_deals_file_names_its_line_and_field(tmp_path: Path) -> None:
    deals = tmp_path / "deals.jsonl"
    deals.write_text('{"id": "D1", "closed_at": "today-3d", "activities": '
                     '[{"id": "X", "kind": "sms", "at": "today-1dT10:00:00Z"}]}\n')
    result = CliRunner().invoke(app, ["plan", str(VECTORS / "winback.yaml"), "--deals",
                                      str(deals), "--now", NOW])
    assert result.exit_code == 2
    assert f"{deals}:1: activities[0].kind: Input should be 'call', 'meeting'" in result.stderr
