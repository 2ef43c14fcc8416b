"""`winback sync` and `winback run` as processes against the sandbox: at INFO they log only
winback's own events, and `run` reloads its rules on SIGHUP (validated first)."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Stack, events
from worker.telemetry.logs import configure

EVENT_NAME = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")  # deal.enrolled, config.reloaded, ...


def _records(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        if line.strip():
            out.append(json.loads(line))  # every stderr line is a JSON record
    return out


def _foreign(log: str) -> list[str]:
    """Lines that are not winback events (a library's INFO text, a logger's name)."""
    return [f"{r.get('level')}: {r.get('event')}" for r in _records(log)
            if not EVENT_NAME.match(str(r.get("event"))) or "logger" in r]


def _info_env(stack: Stack) -> dict[str, str]:
    return {**stack.env(), "WINBACK_LOG_LEVEL": "INFO"}


def test_sync_at_info_logs_only_winback_events(tmp_path: Path) -> None:
    """A first sync creates the SQLite ledger (Alembic) and writes tasks: stderr holds only
    winback events, no "setup plugin alembic..." or "Context impl SQLiteImpl" lines."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=10)
    try:
        proc = subprocess.run(stack.command("sync", str(stack.config_path)), env=_info_env(stack),
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    finally:
        stack.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert events(proc.stderr, "sync.done"), proc.stderr[-2000:]
    assert _foreign(proc.stderr) == []


def _wait(what: str, check: Callable[[], bool], proc: subprocess.Popen[str], log: Path,
          timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise AssertionError(f"winback run exited ({proc.returncode}) waiting for {what}:\n"
                                 + log.read_text()[-3000:])
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n" + log.read_text()[-3000:])


def test_run_reloads_its_rules_on_sighup(tmp_path: Path) -> None:
    """SIGHUP with an invalid file: `config.reload_refused` with the errors, the old rules kept
    (the next ticks re-plan nothing) and the service still ticking. With a file that changes
    `service`: refused, restart needed. With a valid rule edit (defaults.grace): `config.reloaded`
    and the next tick re-plans the enrolled deals under the new rules. At INFO, only winback
    events in the log (no APScheduler "Added job" / "Scheduler started" lines)."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=10)
    original = stack.config_path.read_text()
    assert "grace: 7d" in original and "tick: 1s" in original
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(stack.command("run", str(stack.config_path)),
                                env=_info_env(stack), stdout=log_file,
                                stderr=subprocess.STDOUT, text=True, cwd=tmp_path)

    def count(name: str) -> int:
        return len(events(log_path.read_text(), name))

    def ticks() -> int:
        return count("sync.done")

    try:
        _wait("the first ticks", lambda: ticks() >= 2 and count("deals.enrolled") > 0, proc,
              log_path)

        stack.config_path.write_text(original.replace("grace: 7d", "grace: 7days"))
        proc.send_signal(signal.SIGHUP)
        _wait("the refusal", lambda: count("config.reload_refused") == 1, proc, log_path)
        seen = ticks()
        _wait("two more ticks", lambda: ticks() >= seen + 2, proc, log_path)
        refused = events(log_path.read_text(), "config.reload_refused")[0]
        assert refused["level"] == "error"
        assert any("defaults.grace" in e and "'7days' is not a duration" in e
                   for e in refused["errors"]), refused
        assert count("deal.replanned") == 0  # the old rules are still in force

        stack.config_path.write_text(original.replace("tick: 1s", "tick: 2s"))
        proc.send_signal(signal.SIGHUP)
        _wait("the second refusal", lambda: count("config.reload_refused") == 2, proc, log_path)
        restart = events(log_path.read_text(), "config.reload_refused")[1]
        assert restart["changed"] == ["service"] and "restart" in restart["reason"], restart

        stack.config_path.write_text(original.replace("grace: 7d", "grace: 9d"))
        proc.send_signal(signal.SIGHUP)
        _wait("the reload", lambda: count("config.reloaded") == 1, proc, log_path)
        reloaded = events(log_path.read_text(), "config.reloaded")[0]
        assert reloaded["changed"] == ["defaults"], reloaded
        _wait("the re-plan under the new rules", lambda: count("deal.replanned") > 0, proc,
              log_path)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stack.stop()
    log = log_path.read_text()
    assert proc.returncode == 0, log[-3000:]
    assert _foreign(log) == []


def test_apscheduler_speaks_only_of_errors_at_info(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick longer than its interval is skipped by design: APScheduler's warning about it
    is not a winback event. Its errors still show, named by their logger."""
    monkeypatch.setenv("WINBACK_LOG_LEVEL", "INFO")
    configure(force_json=True)
    try:
        scheduler_log = logging.getLogger("apscheduler.scheduler")
        scheduler_log.info('Added job "tick sf0" to job store "default"')
        scheduler_log.warning('Execution of job "tick sf0" skipped: maximum number of running '
                              "instances reached (1)")
        scheduler_log.error("Error getting due jobs from job store 'default'")
    finally:
        logging.getLogger().handlers.clear()
    records = _records(capsys.readouterr().err)
    assert [(r["level"], r["logger"]) for r in records] == [("error", "apscheduler.scheduler")]
