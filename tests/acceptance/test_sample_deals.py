"""The README's `plan` command on worker/samples/deals.jsonl: the sample is dated relative to
today, so a new user planning it on any day sees fresh losses (no "past due"), and a deals
file may say `today-7d` (relative to --now when given)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.dealsfile import InputErrors, read_deals
from worker.cli.main import app
from worker.settings.loader import default_config_dir

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLE = ROOT / "worker" / "samples" / "deals.jsonl"
CONFIG = default_config_dir() / "winback.yaml"


def _plan(*extra: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(app, ["plan", str(CONFIG), "--deals", str(SAMPLE), "--format",
                                      "json", *extra])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def test_the_sample_plans_fresh_losses_today() -> None:
    """As of today, nothing is skipped as past due: the first tasks are due now or later."""
    result = CliRunner().invoke(app, ["plan", str(CONFIG), "--deals", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "past due" not in result.output
    tasks = _plan()
    assert len(tasks) > 50
    today = datetime.now(UTC).date()
    assert min(date.fromisoformat(str(t["due_date"])) for t in tasks) >= today - timedelta(1)


@pytest.mark.parametrize("now", ["2031-03-03T15:00:00Z", "2027-06-15T15:00:00Z"])
def test_the_sample_is_relative_to_now(now: str) -> None:
    """With --now the sample's dates count from that day: every deal's thank-you is planned
    within the week after it, nothing falls before it."""
    day = date.fromisoformat(now[:10])
    rows = _plan("--now", now)
    assert all(date.fromisoformat(str(r["due_date"])) >= day - timedelta(days=1) for r in rows)
    thanks = [date.fromisoformat(str(r["due_date"])) for r in rows if r["step"] == "thank-you"]
    assert len(thanks) >= 3 and all(day - timedelta(days=1) <= d <= day + timedelta(days=7)
                                    for d in thanks), thanks


def test_relative_dates_in_a_deals_file(tmp_path: Path) -> None:
    """`today`, `today-7d`, `today+1y10d` and `today-3dT16:20:00Z` resolve against the day
    given; anything else that is not a date is an error naming the line and field."""
    path = tmp_path / "deals.jsonl"
    rows = [{"id": "A", "closed_at": "today-7d", "contract_end": "today+1y10d"},
            {"id": "B", "closed_at": "today"},
            {"id": "C", "closed_at": "today-3dT16:20:00Z"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    a, b, c = read_deals(path, today=date(2027, 3, 1))
    assert a.closed_at == date(2027, 2, 22) and a.contract_end == date(2028, 3, 11)
    assert b.closed_at == date(2027, 3, 1)
    assert c.closed_at == datetime(2027, 2, 26, 16, 20, tzinfo=UTC)
    path.write_text(json.dumps({"id": "D", "closed_at": "yesterday"}) + "\n")
    with pytest.raises(InputErrors) as caught:
        read_deals(path, today=date(2027, 3, 1))
    assert caught.value.lines == [f"{path}:1: closed_at: 'yesterday' is not a date: write "
                                  "YYYY-MM-DD, a date-time with a zone (2027-11-08T05:30:00Z), "
                                  "or a day relative to today (today, today-7d, today+1y)"]
