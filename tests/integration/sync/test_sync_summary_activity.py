"""What `winback sync` prints about activity (issue 13), on the HubSpot emulator through the
real SDK: the activities each tick read, the tasks it skipped by activity, and the steps
waiting for a completion now (the ledger's count: an idle tick that re-plans nothing still
shows every waiting step); a dry run says it read no activity instead of printing zeros."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from sandbox.runner import Sandbox, hubspot_connection, start_sandbox
from tests.integration.sync.configs import activity_config
from worker.cli.main import app
from worker.ledger.records import EnrollmentStatus
from worker.ledger.schema import enrollment

CONFIG = activity_config(
    "{id: pm, at: 0d, channel: call}",
    "{id: follow, at: 0d, after: pm}",
    "{id: touch, at: 30d, skip_if: {activity: [call], within: 21d}}",
)
DAY = 86_400
LINE = re.compile(r"^hs: ok in [\d.]+s: \d+ deals read, (?P<enrolled>\d+) enrolled, 0 stopped, "
                  r"(?P<written>\d+) tasks written, 0 failed, \d+ API calls(?P<activity>.*)$")


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    sandbox = start_sandbox(seed=3, ca_dir=tmp_path / "ca",
                            hubspot_options={"burst": 100_000, "search_per_second": 1000})
    try:
        sandbox.seed(8, 3, days_back=6, owners=3, inactive_owners=0)
        for key, value in sandbox.environment().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
        yield sandbox
    finally:
        sandbox.stop()


def sync(path: Path, monkeypatch: pytest.MonkeyPatch, days: int, *extra: str
         ) -> re.Match[str]:
    monkeypatch.setenv("WINBACK_CLOCK_OFFSET", str(days * DAY))
    result = CliRunner().invoke(app, ["sync", str(path), *extra])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("hs: ")]
    assert len(lines) == 1, result.output
    found = LINE.match(lines[0])
    assert found, lines[0]
    return found


def test_sync_prints_what_the_activity_stage_did(box: Sandbox, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, fallback = box.active_owners()
    path = tmp_path / "winback.yaml"
    path.write_text(CONFIG + hubspot_connection("hs", fallback=fallback))
    first = sync(path, monkeypatch, 0)  # every lost deal: pm written, follow waiting
    lost = int(first["enrolled"])
    assert lost >= 2 and int(first["written"]) == lost
    assert first["activity"] == (
        f"; 0 activities read, 0 tasks skipped by activity, {lost} steps waiting for a completion")

    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.connect() as conn:
        deal = str(conn.execute(select(enrollment.c.deal_id).where(
            enrollment.c.status == EnrollmentStatus.ACTIVE).order_by(
            enrollment.c.deal_id)).scalars().first())
    engine.dispose()
    box.admin("hubspot", "POST", "clock", {"offset_seconds": 10 * DAY})
    box.admin("hubspot", "POST", "activities", {"kind": "call", "deal": deal})
    # The tick reads the pm tasks winback wrote and the call.
    second = sync(path, monkeypatch, 10)
    assert second["activity"] == (f"; {lost + 1} activities read, 0 tasks skipped by activity, "
                                  f"{lost} steps waiting for a completion")

    box.admin("hubspot", "POST", "clock", {"offset_seconds": 26 * DAY})
    third = sync(path, monkeypatch, 26)  # the touches' create date: the called deal's skipped
    assert int(third["written"]) == lost - 1
    assert third["activity"].startswith("; ") and third["activity"].endswith(
        f" activities read, 1 tasks skipped by activity, {lost} steps waiting for a completion")

    sync(path, monkeypatch, 26)  # reads the touches written: their deals are re-planned
    idle = sync(path, monkeypatch, 26)  # nothing re-planned: the follow steps still wait
    assert idle["activity"].endswith(
        f" activities read, 0 tasks skipped by activity, {lost} steps waiting for a completion")

    dry = sync(path, monkeypatch, 26, "--dry-run")
    assert dry["activity"].startswith("; activity not read (dry run) (dry run: ")
