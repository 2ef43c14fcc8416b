"""winback's first sync vs a naive script, against the HubSpot emulator with HubSpot's real
limits (100 requests per 10 s, search 5/s) and realistic latency, on the same data.

    python -m bench first_sync --deals 10000 --naive-deals 1000

Each deal is closed-lost with 5 near-term steps, so every task is due for writing at once.
The naive script uses the same SDK the obvious way: search the lost deals, then one create
call per task (with urllib3 retrying 429s, as HubSpot's SDK README suggests).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess

TOKEN = "pat-bench-0000"
LATENCY_MS, JITTER_MS = 40, 30
STEPS = 5
CONFIG = """\
version: 1
defaults: {timezone: America/New_York, lead_time: 7d, grace: 7d}
connections:
  - name: bench-hs
    kind: hubspot
    base_url: URL
    auth: {access_token: "${BENCH_TOKEN}"}
    fields: {loss_reason: closed_lost_reason}
    fallback_owner: "FALLBACK"
cadences:
  - id: near-term
    steps:
""" + "".join(f'      - {{id: s{i}, at: {i}d, channel: call, subject: "Step {i}: '
              '{{ deal.name }}"}\n' for i in range(STEPS))


def start(deals: int) -> tuple[EmulatorProcess, str]:
    emu = EmulatorProcess("hubspot", burst=100, search_per_second=5, daily=1_000_000,
                          tokens=TOKEN)
    emu.admin("POST", "seed", {"generate": {"deals": deals, "seed": 9, "lost_share": 1.0,
                                            "won_share": 0.0, "days_back": 2}})
    emu.admin("POST", "latency", {"ms": LATENCY_MS, "jitter_ms": JITTER_MS})
    owners = emu.admin("GET", "objects/owners")
    owners = owners.get("results", owners) if isinstance(owners, dict) else owners
    fallback = next(str(o["id"]) for o in owners if not o.get("archived"))
    return emu, fallback


def run_winback(emu: EmulatorProcess, fallback: str, tmp: Path) -> dict[str, Any]:
    from worker.service.wiring import build_service
    from worker.settings import load_config
    from worker.sync.tick import run_tick

    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "winback.yaml"
    path.write_text(CONFIG.replace("URL", emu.url).replace("FALLBACK", fallback))
    os.environ["BENCH_TOKEN"] = TOKEN
    os.environ["WINBACK_DATABASE_URL"] = f"sqlite:///{tmp / 'ledger.db'}"
    offset = [timedelta(0)]
    service = build_service(load_config(path), path,
                            clock=lambda: datetime.now(UTC) + offset[0])
    ctx = service.contexts["bench-hs"]
    emu.reset_calls()
    started = time.monotonic()
    result = run_tick(ctx, ignore_schedule=True)
    wall = time.monotonic() - started
    calls = emu.calls()
    # An hour later: one tick re-reads the last overlap window (by design), then the CRM is
    # quiet: the steady-state idle tick.
    for hours in (1, 2):
        offset[0] = timedelta(hours=hours)
        emu.admin("POST", "clock", {"offset_seconds": 3600 * hours})
        emu.reset_calls()
        idle = run_tick(ctx, ignore_schedule=True)
    idle_calls = emu.calls()
    service.close()
    writes = sum(n for e, n in calls.items() if e.startswith("tasks.batch"))
    return {"result": result.result, "seconds": round(wall, 1),
            "tasks_written": result.counts.tasks_written, "calls": sum(calls.values()),
            "write_calls": writes, "calls_by_endpoint": calls,
            "idle_tick_calls": idle_calls, "idle_tick_writes": idle.counts.tasks_written}


def run_naive(emu: EmulatorProcess, fallback: str) -> dict[str, Any]:
    from hubspot import HubSpot
    from hubspot.crm.deals import Filter, FilterGroup, PublicObjectSearchRequest
    from hubspot.crm.objects.tasks import (
        AssociationSpec,
        PublicAssociationsForObject,
        PublicObjectId,
        SimplePublicObjectInputForCreate,
    )
    from urllib3.util.retry import Retry

    retry = Retry(total=20, connect=3, read=0, status_forcelist=(429,), allowed_methods=None,
                  backoff_factor=1, respect_retry_after_header=True, raise_on_status=False)
    api = HubSpot(access_token=TOKEN, host=emu.url, retry=retry)
    emu.reset_calls()
    started = time.monotonic()
    stages = [s.id for p in api.crm.pipelines.pipelines_api.get_all(object_type="deals").results
              for s in p.stages if s.metadata.get("isClosed") == "true"
              and float(s.metadata.get("probability", "1")) == 0.0]
    search = api.crm.deals.search_api
    tasks_api = api.crm.objects.tasks.basic_api
    written, after = 0, None
    due = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0)
    while True:
        page = search.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="dealstage",
                                                       operator="IN", values=stages)])],
            properties=["dealname", "hubspot_owner_id"], limit=100, after=after))
        for deal in page.results:
            for step in range(STEPS):
                tasks_api.create(simple_public_object_input_for_create=
                                 SimplePublicObjectInputForCreate(
                    properties={"hs_timestamp": (due + timedelta(days=step)).isoformat(),
                                "hs_task_subject": f"Step {step}: {deal.properties['dealname']}",
                                "hs_task_type": "CALL", "hs_task_status": "NOT_STARTED",
                                "hubspot_owner_id": fallback},
                    associations=[PublicAssociationsForObject(
                        to=PublicObjectId(id=deal.id),
                        types=[AssociationSpec(association_category="HUBSPOT_DEFINED",
                                               association_type_id=216)])]))
                written += 1
        if not page.paging or not page.paging.next:
            break
        after = page.paging.next.after
    wall = time.monotonic() - started
    calls = emu.calls()
    return {"seconds": round(wall, 1), "tasks_written": written, "calls": sum(calls.values()),
            "calls_by_endpoint": calls}


def minimum(deals: int, tasks: int, companies: int) -> dict[str, Any]:
    """The rate-limit-bound minimum: the fewest calls the protocol allows, at the limits."""
    burst_calls = (math.ceil(tasks / 100) + math.ceil(deals / 1000)
                   + math.ceil(companies / 100) + 4)  # writes, company links/names, set-up
    search_calls = math.ceil(deals / 200)
    seconds = max(burst_calls / 10, search_calls / 5)
    return {"burst_calls": burst_calls, "search_calls": search_calls,
            "write_calls": math.ceil(tasks / 100), "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench first_sync")
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--naive-deals", type=int, default=1_000)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"limits": "burst 100/10 s, search 5/s", "latency_ms":
                           f"{LATENCY_MS} + up to {JITTER_MS}", "steps_per_deal": STEPS}
    with tempfile.TemporaryDirectory() as tmp:
        # 1. side by side on the same small data set (--naive-deals 0 skips it)
        side_n = {"calls": 0, "seconds": 0.0}
        if args.naive_deals:
            emu, fallback = start(args.naive_deals)
            try:
                side_w = run_winback(emu, fallback, Path(tmp) / "a")
                side_n = run_naive(emu, fallback)
            finally:
                emu.stop()
            out["same_data"] = {"deals": args.naive_deals, "winback": side_w, "naive": side_n,
                                "call_ratio": round(side_n["calls"] / side_w["calls"], 1),
                                "time_ratio": round(side_n["seconds"] / side_w["seconds"], 1)}
        # 2. winback's first sync of the full data set
        emu, fallback = start(args.deals)
        try:
            companies = int(emu.admin("GET", "stats")["objects"]["companies"]["live"])
            full = run_winback(emu, fallback, Path(tmp) / "b")
        finally:
            emu.stop()
        floor = minimum(args.deals, full["tasks_written"], companies)
        per_deal_calls = side_n["calls"] / max(args.naive_deals, 1)
        per_deal_seconds = side_n["seconds"] / max(args.naive_deals, 1)
        out["full"] = {
            "deals": args.deals, "winback": full, "rate_limit_minimum": floor,
            "ratio_to_minimum": round(full["seconds"] / floor["seconds"], 2),
            "write_calls_vs_protocol_minimum": round(full["write_calls"] /
                                                     floor["write_calls"], 3),
            "naive_extrapolated": {"calls": round(per_deal_calls * args.deals),
                                   "seconds": round(per_deal_seconds * args.deals)},
        }
        out["full"]["call_ratio_vs_naive"] = round(
            out["full"]["naive_extrapolated"]["calls"] / full["calls"], 1)
        out["full"]["time_ratio_vs_naive"] = round(
            out["full"]["naive_extrapolated"]["seconds"] / full["seconds"], 1)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
