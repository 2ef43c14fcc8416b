"""A first pull of N Salesforce deals over REST and through Bulk API 2.0: API calls, wall time
and peak memory of the pulling process (Salesforce emulator in its own process).

    python -m bench bulk_pull --deals 100000 1000000
    python -m bench bulk_pull --deals 100000 --verify   # the daily re-read of tracked deals

Each mode runs in a fresh child process: the real `SalesforceConnector` logs in and pulls
every deal since the backfill start (`changed_deals`, the pull a first sync does), turning
each row into a `Deal`; pages are counted and dropped (the ledger is not part of this
measure: bench memory has the whole first sync). REST: 1,000-row pages (queryAll +
nextRecordsUrl). Bulk: the first REST page decides (totalSize above bulk_threshold 2,000),
then one query job: create, state reads (the first after bulk_poll 2s), result pages of
50,000 rows. Calls are the emulator's own counters (every request it answered, the login
included).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from bench.emulator import EmulatorProcess

SINCE = datetime(2000, 1, 1, tzinfo=UTC)


def child(mode: str, url: str, ca: str, ids_file: str | None = None) -> dict[str, Any]:
    """One pull in this process (mode rest or bulk), or the daily re-read of the tracked
    deals listed in `ids_file` (verify-rest: by id, 500 a batch as worker/sync/pull.py
    does; verify-bulk: the connector's one Bulk scan); prints its figures as JSON."""
    from connectors.base import FieldMap, SalesforceSettings
    from connectors.salesforce import SalesforceConnector

    settings = SalesforceSettings(
        name="bench-sf", login_url=url, ca_bundle=ca, timeout=300.0,
        auth={"username": "winback@sandbox.example", "password": "sandbox-password",
              "security_token": "SANDBOXTOKEN"},
        fields=FieldMap(loss_reason="Loss_Reason__c", competitor="Competitor__c",
                        contract_end="Contract_End__c"),
        task_key_field="Winback_Key__c",
        bulk_threshold=None if mode in ("rest", "verify-rest") else 2000)
    connector = SalesforceConnector(settings)
    started = time.monotonic()
    deals = pages = 0
    if mode.startswith("verify"):
        with open(str(ids_file)) as handle:
            ids = handle.read().split()
        scan = connector.every_deal(len(ids))
        if scan is None:
            for start in range(0, len(ids), 500):
                deals += len(connector.deals_by_id(ids[start:start + 500]))
                pages += 1
        else:
            for batch in scan:
                deals += len(batch)
                pages += 1
    else:
        for page in connector.changed_deals(SINCE):
            deals += len(page.deals)
            pages += 1
    seconds = time.monotonic() - started
    with open("/proc/self/status") as handle:
        peak = next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmHWM:"))
    return {"mode": mode, "deals": deals, "pages": pages, "seconds": round(seconds, 1),
            "connector_calls": connector.calls_made, "peak_rss_mb": round(peak, 1)}


def run(deals: int, modes: tuple[str, ...] = ("bulk", "rest")) -> list[dict[str, Any]]:
    emu = EmulatorProcess("salesforce", daily_api_requests=10_000_000,
                          session_ttl_seconds=36_000)
    try:
        started = time.monotonic()
        emu.admin("POST", "seed", {"generate": {"deals": deals, "seed": 4, "days_back": 300,
                                                "lost_share": 0.8, "won_share": 0.1}},
                  timeout=3600)
        seeded = round(time.monotonic() - started)
        out = []
        ids_file = ""
        if any(m.startswith("verify") for m in modes):
            records = emu.admin("GET", "records/Opportunity", timeout=3600)["records"]
            lost = [str(r["Id"]) for r in records
                    if r["IsClosed"] and not r["IsWon"] and not r["IsDeleted"]]
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
                handle.write("\n".join(lost))
                ids_file = handle.name
        for mode in modes:
            emu.reset_calls()
            proc = subprocess.run([sys.executable, "-m", "bench.bulk_pull", "--child", mode,
                                   emu.url, str(emu.ca_path), ids_file],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{mode} pull failed: {proc.stderr[-2000:]}")
            result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
            calls = emu.calls()
            result.update(seeded_deals=deals, seed_seconds=seeded,
                          emulator_calls=sum(calls.values()), calls=calls)
            out.append(result)
            print(json.dumps(result), flush=True)
        return out
    finally:
        emu.stop()


def formula(deals: int) -> dict[str, int]:
    """Calls by construction: REST 1 login + ceil(N / 1,000) pages; Bulk 1 login + 1 REST
    page + 1 Opportunity describe (the configured fields' types for the CSV, once per
    connector) + 1 create + 1 state read (a job done by then; each further read doubles the
    wait) + ceil((N - 1,000 + 1) / 50,000) result pages (the job starts at the last stamp
    the REST page served)."""
    return {"rest": 1 + math.ceil(deals / 1000),
            "bulk": 1 + 1 + 1 + 1 + 1 + max(1, math.ceil((deals - 999) / 50_000))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench bulk_pull")
    parser.add_argument("--deals", type=int, nargs="+", default=[10_000])
    parser.add_argument("--verify", action="store_true",
                        help="the daily re-read of the lost deals (by id vs one Bulk scan)")
    parser.add_argument("--child", nargs="+", metavar="MODE URL CA [IDS]")
    args = parser.parse_args(argv)
    if args.child:
        result = child(*args.child)
        print(json.dumps(result), flush=True)
        return result
    modes = ("verify-bulk", "verify-rest") if args.verify else ("bulk", "rest")
    runs = {n: run(n, modes) for n in args.deals}
    summary = {str(n): {"formula": formula(n), "measured": runs[n]} for n in args.deals}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
