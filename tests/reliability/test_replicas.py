"""Replicas on PostgreSQL: real `winback run` processes sharing one ledger. Each connection's
tick runs on one replica at a time (the sandbox flags overlapping runs of one login), replicas
that die or freeze are replaced, and every task is written once."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import create_engine, select

from tests.pgserver import PgServer
from tests.reliability.conftest import ledger_counts, wait_until
from tests.reliability.harness import MODES, Stack, events
from worker.ledger.schema import connection_state, task


def converged(stack: Stack) -> bool:
    counts = ledger_counts(stack.database_url)
    if counts.get("sending", 0):
        return False
    return stack.missing() == {"salesforce": 0, "hubspot": 0}


def overlaps(stack: Stack) -> list[object]:
    return [*stack.box.admin("salesforce", "GET", "violations")["overlapping_runs"],
            *stack.box.admin("hubspot", "GET", "violations")["overlapping_runs"]]


def stop_all(stack: Stack, procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def converge(stack: Stack, procs: list[subprocess.Popen[str]], timeout: float) -> None:
    """Wait for every task to be written. In weak mode, rows HubSpot search could not confirm
    stay `sending` for the search-lag grace: after a short wait the replicas are stopped and
    one `winback sync` runs with the clock past the grace, as the service would 2 minutes on."""
    if stack.mode == "strict":
        wait_until(lambda: converged(stack), timeout, "all tasks written")
        return
    try:
        wait_until(lambda: converged(stack), min(timeout, 20), "all tasks written")
    except AssertionError:
        stop_all(stack, procs)
        run = stack.run_past_grace()
        assert run.returncode == 0, run.log[-3000:]
        assert converged(stack), "not converged after the search-lag grace"


def in_flight(url: str) -> dict[str, tuple[str, int]]:
    """Connections with a batch being sent right now: {name: (lease holder, lease epoch)}."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(connection_state.c.name, connection_state.c.owner,
                       connection_state.c.epoch).distinct()
                .join(task, task.c.connection == connection_state.c.name)
                .where(task.c.status == "sending", connection_state.c.owner.is_not(None)))
            return {name: (owner, int(epoch)) for name, owner, epoch in rows}
    finally:
        engine.dispose()


def epoch_of(url: str, connection: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(connection_state.c.epoch)
                                    .where(connection_state.c.name == connection)).scalar_one())
    finally:
        engine.dispose()


def lease_holders(url: str) -> set[int]:
    """The pids of the processes holding a connection's lease right now."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            owners = conn.execute(select(connection_state.c.owner).where(
                connection_state.c.owner.is_not(None))).scalars()
            return {int(str(owner).split(":")[1]) for owner in owners}
    finally:
        engine.dispose()


WRITES = {"collections_upsert", "collections_create", "tasks.batch.create", "tasks.batch.upsert"}


@pytest.mark.parametrize(("mode", "accounts"), [
    pytest.param("strict", 10, id="strict"),
    pytest.param("weak", 3, id="weak", marks=pytest.mark.slow),  # (weak churn: the kill test)
])
def test_two_replicas_share_twenty_connections_without_overlap(pg_stack: Stack, mode: str,
                                                               accounts: int) -> None:
    """2 replicas x 20 connections (x 6 in weak mode): every connection synced, no
    connection's run on two replicas at once, 0 duplicates, 0 missed, nothing sent twice;
    SIGTERM exits 0."""
    stack = pg_stack
    stack.start(deals=25, salesforce=accounts, hubspot=accounts, ttl=10, mode=mode)
    stack.migrate()
    procs = [stack.spawn("run", str(stack.config_path)) for _ in range(2)]
    try:
        wait_until(lambda: converged(stack), 240, "all tasks written")
        time.sleep(3)  # a few more ticks on both replicas
    finally:
        stop_all(stack, procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert overlaps(stack) == []
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    stack.assert_tasks_as_planned()
    stack.assert_created_once()
    assert stack.resends() == {"salesforce": 0, "hubspot": 0}
    log = stack.collect_logs()
    pids = {p.pid for p in procs}
    worked = {pid for pid in pids if f":{pid}:" in log}
    assert worked == pids, "one replica never ticked"
    stack.assert_secrets_absent()
    stack.record(f"2 replicas x {2 * accounts} connections (PostgreSQL)", overlapping_runs=0)


LONG = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.mark.parametrize(("mode", "duration", "accounts"), [
    pytest.param("strict", 15, 25, id="strict-short"),
    pytest.param("strict", 300, 25, id="strict-long", marks=LONG),
    pytest.param("weak", 12, 4, id="weak-short"),
    pytest.param("weak", 300, 25, id="weak-long", marks=LONG),
])
def test_three_replicas_fifty_connections_one_killed_every_few_seconds(
        pg_stack: Stack, mode: str, duration: float, accounts: int) -> None:
    """3 replicas x 50 connections (x 8 in the weak short form); every 3 s one replica (a
    lease holder when one holds a lease) is killed (-9) and replaced."""
    stack = pg_stack
    stack.start(deals=20, salesforce=accounts, hubspot=accounts, ttl=4, workers=8, mode=mode)
    stack.migrate()
    for crm in ("salesforce", "hubspot"):
        stack.box.admin(crm, "POST", "latency", {"ms": 10, "jitter_ms": 20})
    rng = random.Random(3)
    procs = [stack.spawn("run", str(stack.config_path)) for _ in range(3)]
    kills = holders_killed = 0
    try:
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            time.sleep(3)
            # The victim: a replica holding a lease when there is one (a kill between ticks
            # proves little), else any. Each must still be running: one that died by itself
            # is a failure, not churn.
            candidates: list[int] = []
            # Wait for a tick in progress: on a loaded machine (CI runs four test workers on
            # two cores) the replicas can go seconds between ticks, and the replacements take
            # seconds to start (seen: 1 of 4 kills struck a holder with a 2 s wait).
            look_until = time.monotonic() + 8
            while not candidates and time.monotonic() < look_until:
                holders = lease_holders(stack.database_url)
                candidates = [i for i, p in enumerate(procs) if p.pid in holders]
                if not candidates:
                    time.sleep(0.05)
            victim = rng.choice(candidates) if candidates else rng.randrange(len(procs))
            assert procs[victim].poll() is None, f"replica {procs[victim].pid} died by itself"
            holders_killed += bool(candidates)
            stack.kill(procs[victim], signal.SIGKILL)
            kills += 1
            procs[victim] = stack.spawn("run", str(stack.config_path))
        converge(stack, procs, 300)
    finally:
        stop_all(stack, procs)
    assert holders_killed >= kills // 2, f"{holders_killed} of {kills} kills struck a holder"
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    stack.assert_tasks_as_planned()
    stack.assert_created_once()
    overlapping = overlaps(stack)
    if mode == "strict":
        assert overlapping == []  # dead replicas never overlap: their leases expire first
    # Weak mode: one batch is several calls (look-up, create), and the lease deadline is
    # checked before the batch, not between its calls, so on a loaded machine a replica whose
    # lease ran out mid-batch finishes it while the next holder starts (seen in 1 of 2 short
    # runs). Counted, not asserted; the duplicates it can cause are checked above.
    stack.assert_secrets_absent()
    stack.record(f"3 replicas x {2 * accounts} connections, kill -9 every 3 s for "
                 f"{duration} s", kills=kills, holders_killed=holders_killed,
                 overlapping_runs=len(overlapping))


PAUSE_ROUNDS_LONG = 5


@pytest.mark.parametrize(("mode", "round_"), [
    pytest.param("strict", 0, id="strict-short"),
    pytest.param("weak", 0, id="weak-short", marks=pytest.mark.slow),
    *[pytest.param(mode, n, id=f"{mode}-long-{n}", marks=LONG)
      for mode in MODES for n in range(1, PAUSE_ROUNDS_LONG + 1)],
])
def test_a_paused_lease_holder_is_replaced_and_writes_nothing_twice(
        pg_stack: Stack, mode: str, round_: int) -> None:
    """SIGSTOP the replica holding a connection past its lease; another takes over; SIGCONT:
    the woken replica's fenced writes fail, and the keyed CRM write absorbs its last call.
    Without a keyed write (weak mode) nothing absorbs a call the woken replica had already
    begun: how often that leaves a duplicate is measured and recorded, not asserted."""
    stack = pg_stack
    # The short form (round 0) pauses one holder among fewer deals; the long rounds use more.
    deals = (600 if mode == "strict" else 300) if round_ else (300 if mode == "strict" else 200)
    stack.start(deals=deals, ttl=3, seed=3 + round_, mode=mode)
    stack.migrate()
    for crm, endpoint in (("salesforce", "collections_upsert" if mode == "strict"
                           else "collections_create"), ("hubspot", "tasks.batch.create")):
        stack.box.admin(crm, "POST", "latency", {"endpoint": endpoint, "ms": 400})
    procs = [stack.spawn("run", str(stack.config_path)) for _ in range(2)]
    try:
        # The holder of a connection with a batch in flight, read in one query: a holder
        # read earlier may have finished its tick and released the lease meanwhile.
        flying = wait_until(lambda: in_flight(stack.database_url), 60, "a batch in flight")
        connection, (owner, epoch) = next(iter(flying.items()))
        pid = int(owner.split(":")[1])
        paused = next(p for p in procs if p.pid == pid)
        crm = next(c.kind for c in stack.config().connections if c.name == connection)
        run_id = f"{owner}#{epoch}"

        def calling() -> bool:  # a write of this run reached the CRM < 0.15 s ago (of 0.4 s)
            recent = time.time() - 0.15
            return any(r["run"] == run_id and r["endpoint"] in WRITES and r["at"] > recent
                       for r in stack.box.admin(crm, "GET", "requests")["requests"])

        wait_until(calling, 60, "the holder inside a CRM write call")
        paused.send_signal(signal.SIGSTOP)  # frozen inside the call: it completes on waking
        time.sleep(3 + 1.5)  # past the lease: the other replica takes over
        # A new epoch, not a new holder's name: the new holder may have finished and let go.
        wait_until(lambda: epoch_of(stack.database_url, connection) > epoch, 30,
                   "a new lease holder")
        paused.send_signal(signal.SIGCONT)
        converge(stack, procs, 240)
    finally:
        stop_all(stack, procs)
    duplicates = stack.duplicates()
    if mode == "strict":
        assert duplicates == {"salesforce": 0, "hubspot": 0}
        stack.assert_created_once()
    else:  # one paused holder re-sends at most its one batch in flight
        assert all(n <= 200 for n in duplicates.values()), duplicates
        twice = {crm: [k for k, v in keys.items() if v["created"] > 2]
                 for crm, keys in stack.writes().items()}
        assert twice == {"salesforce": [], "hubspot": []}, "a key created three times"
    stack.assert_tasks_as_planned()
    log = stack.collect_logs()
    lost = [e for e in events(log, "sync.failed") if e.get("result") == "lease_lost"]
    woken = [e for e in lost if e.get("run_id") == run_id and e.get("connection") == connection]
    assert len(woken) == 1, f"the paused run never noticed it had lost its lease: {lost}"
    # It woke inside the call, finished it, and the fence (not the deadline check, which
    # guards the start of a call) refused to record the result.
    assert "taken over" in str(woken[0].get("error")), woken[0]
    stack.assert_secrets_absent()
    stack.record("SIGSTOP the lease holder past its lease (PostgreSQL)", lease_lost=len(lost),
                 overlapping_runs=len(overlaps(stack)), paused=connection, round=round_)


RESTART_DEALS = 300  # enough for the first writes to come well before the sync ends


def test_postgresql_restarted_in_the_middle_of_a_tick(tmp_path: object) -> None:
    """The database goes away mid-sync and comes back: the service recovers by itself."""
    from pathlib import Path

    server = PgServer()
    stack = Stack(Path(str(tmp_path)), server.url)
    try:
        stack.start(deals=RESTART_DEALS, ttl=5)
        stack.migrate()
        for crm in ("salesforce", "hubspot"):
            stack.box.admin(crm, "POST", "latency", {"ms": 20})
        proc = stack.spawn("run", str(stack.config_path))
        try:
            wait_until(lambda: ledger_counts(stack.database_url).get("written", 0) > 0, 90,
                       "the first writes")
            server.restart(pause=2.0)
            wait_until(lambda: converged(stack), 240, "all tasks written after the restart")
        finally:
            stop_all(stack, [proc])
        assert proc.returncode == 0
        assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
        stack.assert_tasks_as_planned()
        stack.assert_secrets_absent()
        stack.record("PostgreSQL restarted mid-tick", deals=RESTART_DEALS)
    finally:
        stack.stop()
        server.destroy()
