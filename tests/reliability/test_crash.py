"""Crashes: `kill -9` of a real `winback sync` between "sending" and "written", and at random
moments during a large first sync; after restarts, each CRM holds every planned task once."""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.reliability.conftest import ledger_counts, wait_until
from tests.reliability.harness import MODES, WEAK_SEARCH_LAG, Stack, events

KILLS_SHORT, KILLS_LONG = 12, 200
WEAK_KILLS_SHORT = 5
WRITE_ENDPOINTS = {"strict": (("salesforce", "collections_upsert"),
                              ("hubspot", "tasks.batch.create")),
                   "weak": (("salesforce", "collections_create"),
                            ("hubspot", "tasks.batch.create"))}


@pytest.mark.parametrize("mode", MODES)
def test_kill_between_sending_and_written_loses_and_duplicates_nothing(stack: Stack,
                                                                       mode: str) -> None:
    """The CRM got the batch, the process died before recording it: the restart finds the
    tasks by key instead of writing them again. Each key was created by one request and none
    was sent again (a re-send would be absorbed in strict mode: the emulators count it)."""
    stack.start(deals=120, ttl=4, mode=mode)
    stack.migrate()
    for crm, endpoint in WRITE_ENDPOINTS[mode]:
        stack.box.admin(crm, "POST", "latency", {"endpoint": endpoint, "ms": 3000})
    proc = stack.spawn("sync", str(stack.config_path))
    wait_until(lambda: ledger_counts(stack.database_url).get("sending", 0) > 0, 90,
               "a batch in flight")
    time.sleep(0.5)  # the request is on the wire; the emulator finishes it after we die
    stack.kill(proc, signal.SIGKILL)
    in_flight = ledger_counts(stack.database_url).get("sending", 0)
    assert in_flight > 0
    time.sleep(4.5)  # the orphaned requests finish; on PostgreSQL the dead lease expires
    if mode == "weak":
        time.sleep(WEAK_SEARCH_LAG + 0.5)  # ... and reach HubSpot search
    stack.box.admin("salesforce", "POST", "faults", {"clear": True})
    stack.box.admin("hubspot", "POST", "faults", {"clear": True})
    run = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert run.returncode == 0, run.log[-3000:]
    # Every row left `sending` was delivered before the kill: each is found by key, none is
    # put back in the queue to be sent again.
    assert len(events(run.log, "task.reconciled")) == in_flight, run.log[-3000:]
    assert events(run.log, "task.requeued") == []
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    stack.assert_tasks_as_planned()
    stack.assert_created_once()
    assert stack.resends() == {"salesforce": 0, "hubspot": 0}, \
        "tasks were sent again after they were created (reconcile should have found them)"
    assert ledger_counts(stack.database_url).get("sending", 0) == 0
    stack.assert_secrets_absent()
    stack.record("kill between sending and written", database=stack.database_url.split(":")[0],
                 reconciled=len(events(run.log, "task.reconciled")))


LONG = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.mark.parametrize(("mode", "kills", "deals"), [
    pytest.param("strict", KILLS_SHORT, 800, id="strict-short"),
    pytest.param("strict", KILLS_LONG, 800, id="strict-long", marks=LONG),
    pytest.param("weak", WEAK_KILLS_SHORT, 200, id="weak-short"),
    pytest.param("weak", KILLS_LONG, 800, id="weak-long", marks=LONG),
])
def test_random_kills_during_a_large_first_sync(sqlite_stack: Stack, mode: str, kills: int,
                                                deals: int) -> None:
    """kill -9 at random moments, restart each time: 0 duplicates, 0 missed. In weak mode the
    runs that converge come after the search-lag grace, as they would in service."""
    stack = sqlite_stack
    stack.start(deals=deals, mode=mode)
    rng = random.Random(7)
    for crm in ("salesforce", "hubspot"):
        stack.box.admin(crm, "POST", "latency", {"ms": 15, "jitter_ms": 30})
    killed = 0
    for _ in range(kills):
        proc = stack.spawn("sync", str(stack.config_path))
        time.sleep(rng.uniform(0.8, 3.5))
        if proc.poll() is None:
            stack.kill(proc, signal.SIGKILL)
            killed += 1
        else:
            proc.wait()
    for _ in range(3):  # converge
        run = stack.run_once(stack.command("sync", str(stack.config_path))) \
            if mode == "strict" else stack.run_past_grace()
        if run.returncode == 0:
            break
    assert run.returncode == 0, run.log[-3000:]
    assert killed >= kills // 2, f"only {killed} of {kills} runs were killed mid-flight"
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    stack.assert_tasks_as_planned()
    stack.assert_created_once()
    stack.assert_secrets_absent()
    stack.record(f"random kill -9 during first sync ({kills} runs)", kills=killed, deals=deals)
