"""No CRM call starts after the local lease deadline (PostgreSQL).

A tick renews its lease at every fenced ledger write, and `Lease.check()` refuses any CRM call
once `0.75 x lease_ttl` has passed since the last renewal: past that, the database may already
have handed the connection to another replica, and a fence only notices when that replica has
taken it. Here nobody takes it over, so the fence would let the tick go on: only the deadline
stops it. The test holds the tick inside a fenced write (an uncommitted insert of one of the
keys the tick is about to insert makes its insert wait) for longer than the deadline, lets go,
and reads the emulators' request log: no request of that tick may arrive after that moment.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, insert, text

from connectors.models import Channel, Priority
from tests.reliability.conftest import wait_until
from tests.reliability.harness import Stack, events
from worker.cadence.tasks import PlannedTask
from worker.ledger.records import task_values
from worker.ledger.schema import task

TTL = 2.0  # lease_ttl: the local deadline is 1.5 s after each renewal


def _requests(stack: Stack) -> list[dict[str, object]]:
    return [{**r, "crm": crm} for crm in ("salesforce", "hubspot")
            for r in stack.box.admin(crm, "GET", "requests")["requests"]]


def _waiting(engine: Engine) -> int:
    with engine.connect() as probe:
        return int(probe.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'")).scalar_one())


def _ended(stack: Stack, connection: str) -> bool:
    log = "\n".join(p.read_text(errors="replace") for p in stack.tmp.glob("proc-*.log"))
    return any(e.get("connection") == connection
               for name in ("sync.done", "sync.failed") for e in events(log, name))


def test_a_tick_held_past_its_lease_deadline_makes_no_further_crm_call(pg_stack: Stack
                                                                       ) -> None:
    """`winback sync` ticks its connections one after the other: each tick in turn is held
    inside its first page's transaction past its deadline, then let go."""
    stack = pg_stack
    stack.start(deals=120, ttl=TTL)
    stack.migrate()
    now = datetime.now(UTC)
    first = {crm: next(iter(planned.values())) for crm, planned in stack.expected().items()}
    connections = [(c.name, c.kind) for c in stack.config().connections]
    engine = create_engine(stack.database_url)
    blockers = {name: engine.connect() for name, _ in connections}
    released: dict[str, float] = {}
    proc = None
    try:
        held = {}
        for name, crm in connections:
            e = first[crm]
            held[name] = blockers[name].begin()
            blockers[name].execute(insert(task).values(task_values(PlannedTask(
                key=e.key, connection=name, deal_id=e.deal_id, cadence="fixed", step=e.step,
                occurrence=0, contact_id=None, owner_id=e.owner, due_date=e.due,
                remind_at=e.remind_at, create_on=e.due, create_after=e.create_after,
                channel=Channel.CALL, priority=Priority.NORMAL), now)))
        proc = stack.spawn("sync", str(stack.config_path))
        for name, _ in connections:
            wait_until(lambda: _waiting(engine) >= 1, 90, f"{name}'s tick waiting on its key")
            time.sleep(TTL + 0.5)  # well past the deadline (0.75 x TTL after the fence)
            released[name] = time.time()
            held[name].rollback()
            wait_until(lambda n=name: _ended(stack, n), 60, f"{name}'s tick to end")
        assert proc.wait(timeout=120) != 0  # a tick that lost its lease is not a success
    finally:
        for blocker in blockers.values():
            blocker.close()
        engine.dispose()
        if proc is not None:
            stack.kill(proc, signal.SIGKILL)
    log = stack.collect_logs()
    lost = {e["connection"]: e for e in events(log, "sync.failed")
            if e.get("result") == "lease_lost"}
    assert set(lost) == set(released), log[-3000:]
    assert all("deadline" in str(e.get("error")) for e in lost.values()), lost
    kind = dict(connections)
    late = [r for r in _requests(stack) for name, e in lost.items()  # (run ids: owner#epoch)
            if r["crm"] == kind[name] and r["run"] == e["run_id"]
            and float(str(r["at"])) > released[name]]
    assert late == [], f"CRM calls after the lease deadline: {late[:5]}"
    # The next tick picks the work up: nothing was lost by stopping.
    run = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert run.returncode == 0, run.log[-3000:]
    stack.assert_tasks_as_planned()
    stack.assert_secrets_absent()
