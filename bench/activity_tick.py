"""Whole-tick API calls with and without activity rules (issue 13), on both CRMs.

    python -m bench activity_tick --deals 1000 --activities 3000

For each CRM and each rule set: a fresh emulator in its own process with `deals` generated
deals and `activities` activities over them, then `run_tick` of the worker (SQLite ledger):
the first sync (31 days ahead of the seeding, see AHEAD), a tick an hour later (it re-reads
the last overlap window, by design), then the steady-state idle tick two hours later. Calls
are the emulator's own counters. The rule sets: `plain` (fixed offsets, no activity rule,
stop.on_meeting left at its default) and `activity` (after + max_wait, skip_if on
call/meeting, stop.on_meeting: notify).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess

TOKEN = "pat-bench-activity-tick"
AHEAD = timedelta(days=31)
HEAD = """\
version: 1
defaults: {timezone: America/New_York, lead_time: 7d, grace: 7d}
connections:
"""
SALESFORCE = """\
  - name: bench
    kind: salesforce
    login_url: URL
    ca_bundle: CA
    auth: {flow: soap, username: winback@sandbox.example, password: "${BENCH_SF_PASSWORD}",
           security_token: "${BENCH_SF_TOKEN}"}
    task_key_field: Winback_Key__c
    fallback_owner: "FALLBACK"
"""
HUBSPOT = """\
  - name: bench
    kind: hubspot
    base_url: URL
    auth: {access_token: "${BENCH_TOKEN}"}
    fallback_owner: "FALLBACK"
"""
PLAIN = """\
cadences:
  - id: plain
    steps:
      - {id: post-mortem, at: 14d, channel: call}
      - {id: check-in, every: 4w, from: 4w, until: 12w}
      - {id: ninety-day, at: 90d}
"""
ACTIVITY = """\
cadences:
  - id: reactive
    steps:
      - {id: post-mortem, at: 14d, channel: call}
      - {id: check-in, every: 4w, from: 4w, until: 12w, after: post-mortem, max_wait: 21d}
      - {id: ninety-day, at: 90d, skip_if: {activity: [call, meeting], within: 14d}}
stop: {on_meeting: notify}
"""


def _fallback(crm: str, emu: EmulatorProcess) -> str:
    if crm == "hubspot":
        owners = emu.admin("GET", "objects/owners")
        owners = owners.get("results", owners) if isinstance(owners, dict) else owners
        return next(str(o["id"]) for o in owners if not o.get("archived"))
    users = emu.admin("GET", "records/User")
    users = users.get("records", users) if isinstance(users, dict) else users
    return next(str(u["Id"]) for u in users if u.get("IsActive", True))


def measure(crm: str, rules: str, deals: int, activities: int, tmp: Path) -> dict[str, Any]:
    from worker.service.wiring import build_service
    from worker.settings import load_config
    from worker.sync.tick import run_tick

    options: dict[str, Any] = ({"daily_api_requests": 10_000_000, "session_ttl_seconds": 36_000}
                               if crm == "salesforce" else
                               {"burst": 1_000_000, "search_per_second": 1_000_000,
                                "daily": 100_000_000, "tokens": TOKEN})
    emu = EmulatorProcess(crm, **options)
    try:
        emu.admin("POST", "seed", {"generate": {"deals": deals, "seed": 3, "days_back": 30,
                                                "activities": activities}})
        connection = (SALESFORCE if crm == "salesforce" else HUBSPOT).replace(
            "URL", emu.url).replace("CA", emu.ca_path or "").replace(
            "FALLBACK", _fallback(crm, emu))
        path = tmp / crm / rules / "winback.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEAD + connection + (ACTIVITY if rules == "activity" else PLAIN))
        os.environ.update({"BENCH_TOKEN": TOKEN, "BENCH_SF_PASSWORD": "sandbox-password",
                           "BENCH_SF_TOKEN": "SANDBOXTOKEN",
                           "WINBACK_DATABASE_URL": f"sqlite:///{path.parent / 'ledger.db'}"})
        # The seeding stamps activities up to 30 days after their deal's last change: the
        # worker and the emulator run 31 days ahead, so that no stamp is in the future.
        offset = [AHEAD]
        emu.admin("POST", "clock", {"offset_seconds": AHEAD.total_seconds()})
        service = build_service(load_config(path), path,
                                clock=lambda: datetime.now(UTC) + offset[0])
        ctx = service.contexts["bench"]
        emu.reset_calls()
        started = time.monotonic()
        first = run_tick(ctx, ignore_schedule=True)
        seconds = time.monotonic() - started
        first_calls = emu.calls()
        ticks = []
        for hours in (1, 2):
            offset[0] = AHEAD + timedelta(hours=hours)
            emu.admin("POST", "clock", {"offset_seconds": offset[0].total_seconds()})
            emu.reset_calls()
            tick = run_tick(ctx, ignore_schedule=True)
            ticks.append({"result": tick.result, "calls": emu.calls(),
                          "written": tick.counts.tasks_written})
        service.close()
        return {"crm": crm, "rules": rules, "deals": deals, "activities": activities,
                "first_sync": {"result": first.result, "seconds": round(seconds, 1),
                               "calls": sum(first_calls.values()),
                               "by_endpoint": first_calls,
                               "activities_read": first.counts.activities_read,
                               "skipped_by_activity": first.counts.skipped_by_activity,
                               "written": first.counts.tasks_written},
                "after_an_hour": ticks[0],
                "idle_tick": {"total": sum(ticks[1]["calls"].values()), **ticks[1]}}
    finally:
        emu.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench activity_tick")
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--activities", type=int, default=3000)
    parser.add_argument("--crm", nargs="+", default=["salesforce", "hubspot"])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for crm in args.crm:
            for rules in ("plain", "activity"):
                r = measure(crm, rules, args.deals, args.activities, Path(tmp))
                results.append(r)
                print(f"{crm:10} {rules:8}: first sync {r['first_sync']['calls']} calls "
                      f"({r['first_sync']['activities_read']} activities read, "
                      f"{r['first_sync']['written']} written), idle tick "
                      f"{r['idle_tick']['total']} calls {r['idle_tick']['calls']}")
    out = Path(__file__).parent / "results" / "activity_tick.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
