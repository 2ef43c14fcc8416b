"""The weak key modes' own windows, pinned: Salesforce without the External ID field (a
`[wb:<key>]` marker in the Subject, found by SOQL) and HubSpot with a key property without
unique values (create+search, search lagging writes).

- Rows a crash left `sending` whose tasks never reached the CRM are re-sent at once on
  Salesforce (SOQL does not lag) and only after the search-lag grace on HubSpot.
- A Salesforce create that times out and is applied by the server after winback looked the
  keys up is created again in marker mode (a duplicate); an upsert by key absorbs it.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.reliability.conftest import ledger_counts, wait_until
from tests.reliability.harness import MODES, Stack

SF_TIMEOUT = 2.0  # the harness's connection timeout (FAST)
LATE = 8.0  # the late create is applied this long after it arrived: after winback's look-up


def test_search_lag_grace_holds_hubspot_rows_only(sqlite_stack: Stack) -> None:
    """kill -9 with creates on the wire that the CRMs never apply (held 3 s, then the
    connection is dropped): the restart re-sends the Salesforce rows at once and holds the
    HubSpot ones for the grace; one run past the grace writes them. Each key created once."""
    stack = sqlite_stack
    stack.start(deals=40, ttl=4, mode="weak")
    stack.migrate()  # the ledger exists before the first poll of its rows
    for crm, endpoint in (("salesforce", "collections_create"),
                          ("hubspot", "tasks.batch.create")):
        stack.box.admin(crm, "POST", "faults", {"endpoint": endpoint, "latency_ms": 3000,
                                                "drop_rate": 1.0})
    proc = stack.spawn("sync", str(stack.config_path))
    wait_until(lambda: ledger_counts(stack.database_url).get("sending", 0) > 0, 90,
               "a batch in flight")
    wait_until(lambda: stack.box.admin("salesforce", "GET", "calls")["calls"].get(
        "collections_create") and stack.box.admin("hubspot", "GET", "calls")["calls"].get(
        "tasks.batch.create"), 90, "creates on the wire to both CRMs")  # (seen > 30 s in CI)
    stack.kill(proc, signal.SIGKILL)
    for crm in ("salesforce", "hubspot"):
        stack.box.admin(crm, "POST", "faults", {"clear": True})
    time.sleep(3.5)  # the held requests are dropped: nothing was applied
    assert stack.crm_keys() == {"salesforce": [], "hubspot": []}

    run = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert run.returncode == 0, run.log[-3000:]
    missing = stack.missing()
    assert missing["salesforce"] == 0, "Salesforce rows were held: SOQL lookups do not lag"
    assert missing["hubspot"] > 0, "HubSpot rows were re-sent before the search-lag grace"
    assert ledger_counts(stack.database_url).get("sending", 0) > 0

    run = stack.run_past_grace()
    assert run.returncode == 0, run.log[-3000:]
    assert stack.missing() == {"salesforce": 0, "hubspot": 0}
    assert ledger_counts(stack.database_url).get("sending", 0) == 0
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    stack.assert_created_once()
    stack.record("search-lag grace: HubSpot only", held_hubspot=missing["hubspot"])


@pytest.mark.parametrize("mode", MODES)
def test_a_salesforce_create_applied_after_the_lookup(sqlite_stack: Stack, mode: str) -> None:
    """The first Salesforce write answers after the client's timeout and is applied 8 s after
    it arrived, after winback's look-up (timeout + settle) found nothing and the batch was
    sent again. Strict mode: the late write matches the key and is absorbed (a re-send).
    Marker mode: it creates every task of the batch a second time. This is the window the
    External ID field closes; docs/reliability.md states it."""
    stack = sqlite_stack
    stack.start(deals=30, mode=mode)
    endpoint = "collections_upsert" if mode == "strict" else "collections_create"
    stack.box.admin("salesforce", "POST", "faults", {
        "endpoint": endpoint, "slow_rate": 1.0, "slow_seconds": LATE, "count": 1})
    run = stack.run_once(stack.command("sync", str(stack.config_path), "--connection", "sf0"))
    assert run.returncode == 0, run.log[-3000:]
    assert '"crm.retry"' in run.log, "the slow write did not time out"
    # The late write lands (8 s after it arrived): as a re-send or as a second create.
    wait_until(lambda: any(v["resent"] or v["created"] > 1
                           for v in stack.writes()["salesforce"].values()), LATE + 5,
               "the late write to land")
    time.sleep(0.5)  # every record of it
    assert stack.missing()["salesforce"] == 0
    keys = stack.writes()["salesforce"]
    tasks = len(stack.crm_keys()["salesforce"])
    twice = [k for k, v in keys.items() if v["created"] == 2]
    if mode == "strict":
        assert twice == []
        assert stack.duplicates()["salesforce"] == 0
        assert stack.resends()["salesforce"] > 0, "the late upsert was not absorbed"
    else:
        assert twice, "the late create did not create its tasks a second time"
        assert stack.duplicates()["salesforce"] == len(twice)
        assert all(v["created"] <= 2 for v in keys.values())
    stack.record("Salesforce create applied after the look-up", crm="salesforce",
                 salesforce_tasks=tasks, created_twice=len(twice))
