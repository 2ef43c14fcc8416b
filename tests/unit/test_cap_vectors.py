"""The cap plan vectors (issue 14 parts 1-2): `winback plan` over tests/fixtures/plan-vectors/
cap/ must give exactly expected.jsonl (README.md there pins each rule), whatever the order of
the deals file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.main import app

VECTORS = Path(__file__).resolve().parent.parent / "fixtures" / "plan-vectors" / "cap"
NOW = "2027-12-01T15:00:00Z"
IGNORED = ("key", "occurrence")  # the implementation's own (as in the shared vectors)


def _lines(text: str) -> list[str]:
    return sorted(json.dumps({k: v for k, v in json.loads(line).items() if k not in IGNORED},
                             sort_keys=True)
                  for line in text.splitlines() if line.strip())


def _plan(config: Path, deals: Path) -> list[str]:
    result = CliRunner().invoke(app, ["plan", str(config), "--deals", str(deals), "--now", NOW,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    return _lines(result.stdout)


def _expected() -> list[str]:
    return _lines((VECTORS / "expected.jsonl").read_text())


def test_cap_vectors_produce_exactly_the_expected_lines() -> None:
    got, expected = _plan(VECTORS / "winback.yaml", VECTORS / "deals.jsonl"), _expected()
    assert len(expected) == 31
    assert [r for r in expected if r not in got] == []
    assert [r for r in got if r not in expected] == []
    skipped = sorted(json.loads(r)["deal_id"] for r in expected if '"skipped"' in r)
    assert skipped == ["B1", "C7", "D2"]


def test_the_order_of_the_deals_file_does_not_change_the_plan(tmp_path: Path) -> None:
    lines = (VECTORS / "deals.jsonl").read_text().splitlines()
    reordered = tmp_path / "deals.jsonl"
    reordered.write_text("\n".join(lines[1::2] + lines[::2][::-1]) + "\n")
    assert _plan(VECTORS / "winback.yaml", reordered) == _expected()


def test_without_a_cap_every_task_keeps_its_day(tmp_path: Path) -> None:
    text = (VECTORS / "winback.yaml").read_text()
    for line in ("  max_tasks_per_owner_per_day: 5\n", "    max_tasks_per_owner_per_day: 2\n",
                 "      U2: {max_tasks_per_day: 1}\n", "      U5: {max_tasks_per_day: 4}\n"):
        assert line in text
        text = text.replace(line, "")
    config = tmp_path / "winback.yaml"
    config.write_text(text.replace("    owners:\n", ""))
    rows = [json.loads(r) for r in _plan(config, VECTORS / "deals.jsonl")]
    assert len(rows) == 31
    assert all(r["status"] == "planned" and r["moved"] is None for r in rows)


def test_the_table_shows_the_moves_and_the_skips() -> None:
    result = CliRunner().invoke(app, ["plan", str(VECTORS / "winback.yaml"), "--deals",
                                      str(VECTORS / "deals.jsonl"), "--now", NOW])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert ("moved call#0 to 2027-12-27 instead of 2027-12-23: owner's daily cap: U1 has 2 "
            "task(s) due on 2027-12-23 already") in text
    assert "skipped call#0 due 2027-12-16: owner's daily cap" in text
