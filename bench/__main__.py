"""`python -m bench [name] [options]`: run one benchmark (default: all, small sizes)."""

from __future__ import annotations

import sys

from bench import (
    activity,
    activity_tick,
    bulk_pull,
    cap,
    first_sync,
    fleet,
    idle_sync,
    ledger_write,
    memory,
    planner,
    report,
)

BENCHES = {"planner": planner.main, "first_sync": first_sync.main, "memory": memory.main,
           "activity": activity.main, "activity_tick": activity_tick.main, "cap": cap.main,
           "idle_sync": idle_sync.main, "report": report.main, "bulk_pull": bulk_pull.main,
           "ledger_write": ledger_write.main, "fleet": fleet.main}


def run() -> None:
    from worker.telemetry.logs import configure

    configure("WARNING")
    args = sys.argv[1:]
    if args and args[0] in BENCHES:
        BENCHES[args[0]](args[1:])
        return
    if args:
        sys.exit(f"unknown benchmark {args[0]!r} (known: {', '.join(BENCHES)})")
    for name, bench in BENCHES.items():
        print(f"== {name}")
        bench([])


run()
