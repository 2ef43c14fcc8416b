"""The per-owner daily cap, pure (worker/cadence/capacity.py via Planner.apply_cap): plan N
generated closed-lost deals (default playbook, 20 owners), then place every task under a cap
of 8 per owner per day, one core.

    python -m bench cap --deals 20000

Prints the planning time, the cap's time, tasks placed per second, and how many it moved and
skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from bench.planner import deals_from_seed
from worker.cadence.engine import Planner
from worker.settings import load_config
from worker.settings.loader import default_config_dir


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cap")
    parser.add_argument("--deals", type=int, default=5000)
    parser.add_argument("--cap", type=int, default=8)
    args = parser.parse_args(argv)
    config = load_config(default_config_dir() / "winback.yaml", require_env=False)
    config = config.model_copy(update={"defaults": config.defaults.model_copy(
        update={"max_tasks_per_owner_per_day": args.cap})})
    planner = Planner(config, "acme-sf")
    now = datetime(2027, 11, 12, 14, tzinfo=UTC)
    started = time.perf_counter()
    plans = [planner.plan(d, now) for d in deals_from_seed(args.deals, 1, now)]
    planned = time.perf_counter() - started
    tasks = sum(len(p.tasks) for p in plans)
    started = time.perf_counter()
    capped = planner.apply_cap(plans)
    seconds = time.perf_counter() - started
    moved = sum(len(c.moved) - len(p.moved) for p, c in zip(plans, capped, strict=True))
    skipped = sum(len(c.skipped) - len(p.skipped) for p, c in zip(plans, capped, strict=True))
    print(json.dumps({"deals": args.deals, "tasks": tasks, "cap": args.cap,
                      "plan_seconds": round(planned, 2), "cap_seconds": round(seconds, 2),
                      "tasks_per_second": round(tasks / seconds) if seconds else None,
                      "moved": moved, "skipped": skipped}))
