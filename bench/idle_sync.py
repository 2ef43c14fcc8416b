"""A one-shot `winback sync` with nothing new: the calls each connection makes, counted by the
emulators, with the setup cache (the default) and without it (`service.setup_cache: 0s`).

    python -m bench idle_sync --deals 300

One Salesforce and one HubSpot connection against the sandbox (real `winback` processes, a
SQLite ledger): a first sync, an idle one right after it (its overlap re-reads the first
sync's deals: HubSpot then also reads their company links and names), and a quiet one 25
minutes later on the simulated clock, after one run there has moved the watermark up past
the 10-minute overlap (nothing is re-read),
each a new process as a cron job or a restarted pod would be. Write calls (tasks that came
due meanwhile) are left out of the idle and quiet counts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

WRITES = {"collections_create", "collections_update", "collections_upsert", "sobject_create",
          "sobject_update", "sobject_upsert", "tasks.create", "tasks.update",
          "tasks.batch.create", "tasks.batch.update", "tasks.batch.upsert"}


def _calls(stack: Any, crm: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in stack.box.admin(crm, "GET", "calls")["calls"].items()}


def measure(deals: int, cache: bool) -> dict[str, Any]:
    from tests.reliability.harness import Stack

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), f"sqlite:///{Path(tmp) / 'ledger.db'}")
        stack.start(deals=deals)
        try:
            if not cache:
                stack.config_path.write_text(stack.config_path.read_text().replace(
                    "workers: 4}", "workers: 4, setup_cache: 0s}"))
            out: dict[str, Any] = {"setup_cache": cache}
            for run in ("first", "idle", "quiet"):
                for crm in ("salesforce", "hubspot"):
                    stack.box.admin(crm, "POST", "calls/reset")
                if run == "quiet":  # past the overlap: one run to move the watermark up
                    stack.offset += 25 * 60
                    stack.run_once(stack.command("sync", str(stack.config_path)))
                    for crm in ("salesforce", "hubspot"):
                        stack.box.admin(crm, "POST", "calls/reset")
                result = stack.run_once(stack.command("sync", str(stack.config_path)))
                if result.returncode != 0:
                    raise SystemExit(result.log[-3000:])
                out[run] = {crm: {k: n for k, n in _calls(stack, crm).items()
                                  if run == "first" or k not in WRITES}
                            for crm in ("salesforce", "hubspot")}
            return out
        finally:
            stack.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench idle_sync")
    parser.add_argument("--deals", type=int, default=300)
    args = parser.parse_args(argv)
    for cache in (True, False):
        figures = measure(args.deals, cache)
        print(json.dumps(figures))
        for run in ("idle", "quiet"):
            per = {crm: sum(c.values()) for crm, c in figures[run].items()}
            print(f"setup_cache {'on ' if cache else 'off'} {run:10}: "
                  + ", ".join(f"{crm} {n} calls {figures[run][crm]}" for crm, n in per.items()))
