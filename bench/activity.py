"""API calls of the activity read (issue 13): `changed_activities` against each emulator.

    python -m bench activity --deals 1000 --activities 3000 6000

For each CRM and each activity count: a fresh emulator in its own process with `deals`
generated deals and that many activities spread over them (Salesforce: logged calls and
emails, meetings, open tasks; HubSpot: calls, emails, meetings, notes, tasks), then
- the first read (every kind, since the epoch): calls, by endpoint;
- an idle read (nothing changed since the last watermark): every kind, and only the kinds
  a `skip_if: {activity: [call, meeting]}` rule would ask for;
- an idle deal pull, for the idle tick with activity rules (deals + activities).
The figures come from the emulators' own call counters.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess
from connectors.base import Connector, HubSpotSettings, SalesforceSettings
from connectors.models import ActivityKind

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ALL = frozenset(ActivityKind)
SOME = frozenset({ActivityKind.CALL, ActivityKind.MEETING})
TOKEN = "pat-bench-activity"


def _connector(crm: str, emu: EmulatorProcess) -> Connector:
    if crm == "salesforce":
        from connectors.salesforce import SalesforceConnector
        return SalesforceConnector(SalesforceSettings(
            name="bench-sf", login_url=emu.url, ca_bundle=emu.ca_path, timeout=120.0,
            task_key_field="Winback_Key__c",
            auth={"username": "winback@sandbox.example", "password": "sandbox-password",
                  "security_token": "SANDBOXTOKEN"}))
    from connectors.hubspot import HubSpotConnector
    return HubSpotConnector(HubSpotSettings(
        name="bench-hs", base_url=emu.url, auth={"access_token": TOKEN}, timeout=120.0,
        burst_limit=10_000, search_per_second=100, api_budget_share=1.0))


def _calls(emu: EmulatorProcess, before: dict[str, int]) -> dict[str, int]:
    after = emu.calls()
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def measure(crm: str, deals: int, activities: int) -> dict[str, Any]:
    options: dict[str, Any] = ({"daily_api_requests": 10_000_000, "session_ttl_seconds": 36_000}
                               if crm == "salesforce" else
                               {"burst": 1_000_000, "search_per_second": 1_000_000,
                                "daily": 100_000_000, "tokens": TOKEN})
    emu = EmulatorProcess(crm, **options)
    try:
        emu.admin("POST", "seed", {"generate": {"deals": deals, "seed": 3,
                                                "activities": activities}})
        connector = _connector(crm, emu)
        connector.ensure_setup(create=True)
        deal_mark = max((p.watermark for p in connector.changed_deals(EPOCH)
                         if p.watermark is not None), default=EPOCH)
        before = emu.calls()
        started = time.monotonic()
        read, mark = 0, EPOCH
        for page in connector.changed_activities(EPOCH, ALL):
            read += len(page.activities)
            mark = page.watermark or mark
        first = _calls(emu, before)
        seconds = time.monotonic() - started
        idle: dict[str, int] = {}
        for name, kinds in (("all kinds", ALL), ("call+meeting", SOME)):
            before = emu.calls()
            # SOQL datetime literals have whole seconds: a moment inside the watermark's
            # second reads that second's rows again, so idle means "a second later"
            assert not [a for p in connector.changed_activities(mark + timedelta(seconds=1),
                                                                kinds) for a in p.activities]
            idle[name] = sum(_calls(emu, before).values())
        before = emu.calls()
        list(connector.changed_deals(deal_mark + timedelta(seconds=1)))
        idle_deals = sum(_calls(emu, before).values())
        connector.close()
        return {"crm": crm, "deals": deals, "activities": activities, "read": read,
                "first_read_calls": sum(first.values()), "first_read_by_endpoint": first,
                "first_read_seconds": round(seconds, 2), "idle_activity_calls": idle,
                "idle_deal_calls": idle_deals,
                "idle_tick_with_activity_rules": idle_deals + idle["all kinds"]}
    finally:
        emu.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench activity")
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--activities", type=int, nargs="+", default=[3000, 6000])
    parser.add_argument("--crm", nargs="+", default=["salesforce", "hubspot"])
    args = parser.parse_args(argv)
    results = [measure(crm, args.deals, n) for crm in args.crm for n in args.activities]
    for r in results:
        print(f"{r['crm']:10} {r['deals']:>6} deals {r['activities']:>6} activities: first read "
              f"{r['first_read_calls']} calls ({r['read']} read, {r['first_read_seconds']} s), "
              f"idle {r['idle_activity_calls']}, idle tick with activity rules "
              f"{r['idle_tick_with_activity_rules']}")
    out = Path(__file__).parent / "results" / "activity.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
