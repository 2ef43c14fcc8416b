"""Write calls, counted by the emulators, through a real `winback sync`: T tasks take
ceil(T / 200) Salesforce sObject Collections calls and ceil(T / 100) HubSpot batch calls (the
CRMs' batch limits), and a tick with nothing new writes nothing."""

from __future__ import annotations

import math

from tests.reliability.harness import Stack

SALESFORCE_WRITES = {"collections_create", "collections_update", "collections_upsert",
                     "sobject_create", "sobject_update", "sobject_upsert"}
HUBSPOT_WRITES = {"tasks.create", "tasks.update", "tasks.batch.create", "tasks.batch.update",
                  "tasks.batch.upsert"}
BATCH = {"salesforce": 200, "hubspot": 100}
IDLE_CALLS = {"salesforce": {"soap_login": 1, "query_all": 1}, "hubspot": {"deals.search": 1}}
SETUP_CALLS = {"salesforce": {"sobject_describe", "query"},
               "hubspot": {"pipelines.list", "owners.list", "properties.get", "properties.list",
                           "properties.groups"}}


def _calls(stack: Stack, crm: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in stack.box.admin(crm, "GET", "calls")["calls"].items()}


def _writes(calls: dict[str, int], crm: str) -> dict[str, int]:
    names = SALESFORCE_WRITES if crm == "salesforce" else HUBSPOT_WRITES
    return {k: n for k, n in calls.items() if k in names}


def test_a_first_sync_writes_in_full_batches_and_an_idle_tick_writes_nothing(
        sqlite_stack: Stack) -> None:
    """300 deals (one page of deals per CRM, so every due task is queued before the first
    write): each CRM gets its tasks in the fewest calls its batch limit allows."""
    stack = sqlite_stack
    stack.start(deals=300)
    run = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert run.returncode == 0, run.log[-3000:]
    stack.assert_tasks_as_planned()
    held = {crm: len(stack.box.tasks(crm)) for crm in BATCH}
    for crm, size in BATCH.items():
        assert held[crm] > 2 * size, f"{crm}: {held[crm]} tasks are too few to fill batches"
        writes = _writes(_calls(stack, crm), crm)
        assert sum(writes.values()) == math.ceil(held[crm] / size), (crm, held[crm], writes)
        stack.box.admin(crm, "POST", "calls/reset")
    idle = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert idle.returncode == 0, idle.log[-3000:]
    for crm in BATCH:
        calls = _calls(stack, crm)
        assert _writes(calls, crm) == {}, (crm, calls)
        deal_reads = calls.get("query_all", 0) if crm == "salesforce" \
            else calls.get("deals.search", 0)
        assert deal_reads == 1, (crm, calls)  # one read of what changed
        # No setup call: it comes from the ledger's setup cache (a new process).
        assert not SETUP_CALLS[crm] & calls.keys(), (crm, calls)
        stack.box.admin(crm, "POST", "calls/reset")
    assert {crm: len(stack.box.tasks(crm)) for crm in BATCH} == held
    # Later, once the overlap no longer re-reads the first sync's deals (a run 25 minutes on
    # has moved the watermark past them):
    # a one-shot sync with nothing new is one read per connection, plus a Salesforce login
    # (a new process has no session). Writes that came due meanwhile are not counted here.
    stack.offset += 25 * 60
    settle = stack.run_once(stack.command("sync", str(stack.config_path)))  # watermark up
    assert settle.returncode == 0, settle.log[-3000:]
    for crm in BATCH:
        stack.box.admin(crm, "POST", "calls/reset")
    quiet = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert quiet.returncode == 0, quiet.log[-3000:]
    for crm in BATCH:
        calls = _calls(stack, crm)
        assert {k: n for k, n in calls.items() if k not in _writes(calls, crm)} \
            == IDLE_CALLS[crm], (crm, calls)
    stack.record("write calls of a first sync and an idle tick", deals=300)
