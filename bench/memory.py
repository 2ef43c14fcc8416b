"""Peak memory of a first sync of N deals (Salesforce emulator in its own process), to show
that memory stays flat as the CRM grows: the pull streams pages, nothing holds the result.

    python -m bench memory --deals 100000 1000000
    python -m bench memory --deals 100000 --postgresql   # a PostgreSQL ledger (fresh database)

The PostgreSQL ledger is a new database per run on WINBACK_TEST_PG's server (default
postgres@127.0.0.1:5432), migrated with `winback migrate` first, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess

CONFIG = """\
version: 1
defaults: {timezone: America/New_York}
connections:
  - name: bench-sf
    kind: salesforce
    login_url: URL
    ca_bundle: CA
    auth: {username: winback@sandbox.example, password: "${SF_PASSWORD}",
           security_token: "${SF_TOKEN}"}
    fields: {loss_reason: Loss_Reason__c, competitor: Competitor__c,
             contract_end: Contract_End__c}
    task_key_field: Winback_Key__c
    backfill: 400d
    timeout: 120s
cadences:
  - id: later
    steps:
      - {id: first-touch, at: 30d, subject: "First touch: {{ deal.name }}"}
"""


def peak_rss_mb(pid: int) -> float:
    """VmHWM (the peak resident set) of a live process, in MB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fresh_postgresql(name: str) -> str:
    """A new, empty PostgreSQL database for one run; its URL."""
    from sqlalchemy import create_engine, text

    admin = os.environ.get("WINBACK_TEST_PG",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.rsplit("/", 1)[0] + f"/{name}"


def sync_once(deals: int, tmp: Path, postgresql: bool = False, profile: Path | None = None
              ) -> dict[str, Any]:
    emu = EmulatorProcess("salesforce", daily_api_requests=10_000_000,
                          session_ttl_seconds=36_000)
    try:
        started = time.monotonic()
        emu.admin("POST", "seed", {"generate": {"deals": deals, "seed": 4, "days_back": 300,
                                                "lost_share": 0.8, "won_share": 0.1}},
                  timeout=3600)
        seed_seconds = time.monotonic() - started
        work = tmp / f"n{deals}"
        work.mkdir()
        path = work / "winback.yaml"
        path.write_text(CONFIG.replace("URL", emu.url).replace("CA", str(emu.ca_path)))
        url = (fresh_postgresql(f"winback_bench_memory_{deals}") if postgresql
               else f"sqlite:///{work / 'ledger.db'}")
        env = {**os.environ, "SF_PASSWORD": "sandbox-password", "SF_TOKEN": "SANDBOXTOKEN",
               "WINBACK_DATABASE_URL": url, "WINBACK_LOG_LEVEL": "WARNING"}
        if postgresql:
            subprocess.run([sys.executable, "-m", "worker", "migrate", str(path)], env=env,
                           check=True, capture_output=True)
        started = time.monotonic()
        log = (work / "sync.log").open("w")
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        proc = subprocess.Popen([sys.executable, *profiler, "-m", "worker", "sync", str(path)],
                                env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = 0.0
        while proc.poll() is None:
            try:
                peak = max(peak, peak_rss_mb(proc.pid))
            except OSError:
                break
            time.sleep(0.2)
        proc.wait()
        log.close()
        seconds = time.monotonic() - started
        out = (work / "sync.log").read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"sync failed: {out[-2000:]}")
        return {"deals": deals, "ledger": "postgresql" if postgresql else "sqlite",
                "peak_rss_mb": round(peak, 1), "sync_seconds": round(seconds, 1),
                "deals_per_second": round(deals / seconds), "seed_seconds": round(seed_seconds),
                "summary": next((line for line in reversed(out.splitlines())
                                 if line.startswith("bench-sf:")), "")}
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--deals", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--profile", type=Path, default=None,
                        help="write the sync's cProfile stats here (one --deals value; the "
                             "profiler slows the run, so its times are not the benchmark's)")
    parser.add_argument("--postgresql", action="store_true",
                        help="a PostgreSQL ledger (a new database per run) instead of SQLite")
    args = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for deals in args.deals:
            runs.append(sync_once(deals, Path(tmp), args.postgresql, args.profile))
            print(json.dumps(runs[-1]), flush=True)
    out: dict[str, Any] = {"runs": runs}
    if len(runs) >= 2:
        out["rss_ratio_largest_to_smallest"] = round(runs[-1]["peak_rss_mb"] /
                                                     runs[0]["peak_rss_mb"], 2)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
