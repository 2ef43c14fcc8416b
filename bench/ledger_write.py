"""The ledger's share of a first sync, without the CRM: pages of generated closed-lost deals
go through the sync's own store step (worker/sync/plan.py `store_page`, the planner, the
ledger's writes and the rollup triggers) in one transaction per page, as a first sync stores
them. Runs on SQLite (default) or on the PostgreSQL of WINBACK_DATABASE_URL.

    python -m bench ledger_write --deals 100000 2>/dev/null
    WINBACK_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1/bench python -m bench ledger_write

Logs as `winback run` does (INFO, JSON lines on stderr): what a first sync logs is part of
its cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

CONFIG = """\
version: 1
defaults: {timezone: America/New_York}
connections:
  - name: bench-sf
    kind: salesforce
    login_url: https://127.0.0.1:9
    auth: {username: winback@sandbox.example, password: "${BENCH_PW}",
           security_token: "${BENCH_PW}"}
    backfill: 400d
cadences:
  - id: later
    steps:
      - {id: first-touch, at: 30d, subject: "First touch: {{ deal.name }}"}
"""
PAGE = 1000


def deals(n: int, now: datetime, seed: int = 4) -> Any:
    from connectors.models import Deal, Owner

    rng = random.Random(seed)
    owners = [Owner(id=f"005{i:012d}", email=f"rep{i}@example.com", name=f"Rep {i}",
                    timezone="America/New_York", country="US") for i in range(50)]
    for i in range(n):
        closed = now - timedelta(days=rng.randrange(0, 300), seconds=rng.randrange(86400))
        yield Deal(id=f"006{i:012d}", name=f"Deal {i}", account_id=f"001{i % 20000:012d}",
                   account_name=f"Account {i % 20000}", stage="Closed Lost", closed_at=closed,
                   amount=float(rng.randrange(1000, 90000)), loss_reason="Price",
                   owner=owners[i % len(owners)], is_closed=True, is_won=False,
                   created_at=closed - timedelta(days=30), modified_at=closed)


def ledger_bytes(engine: Any, url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with engine.connect() as conn:
        return int(conn.execute(text(
            "select sum(pg_total_relation_size(c.oid)) from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = current_schema() and c.relkind = 'r'"
        )).scalar() or 0)


def run(n: int, tmp: Path) -> dict[str, Any]:
    from worker.ledger.leases import Lease
    from worker.service.wiring import build_service
    from worker.settings import load_config
    from worker.sync.context import Tick
    from worker.sync.plan import store_page

    path = tmp / "winback.yaml"
    path.write_text(CONFIG)
    os.environ.setdefault("BENCH_PW", "unused")
    os.environ.setdefault("WINBACK_DATABASE_URL", f"sqlite:///{tmp / 'ledger.db'}")
    url = os.environ["WINBACK_DATABASE_URL"]
    if not url.startswith("sqlite"):  # (a PostgreSQL ledger is migrated first, as in production)
        from sqlalchemy import create_engine

        from worker.ledger import migrate

        migrate.upgrade(create_engine(url))
    now = datetime(2027, 3, 1, 12, tzinfo=UTC)
    service = build_service(load_config(path), path, clock=lambda: now,
                            connector_factory=lambda settings, observer: object())  # type: ignore[arg-type,return-value]
    ctx = service.contexts["bench-sf"]
    tick = Tick(ctx, Lease("bench-sf", "bench", 1, 120.0), now)
    page: list[Any] = []
    started = time.perf_counter()
    cpu = time.process_time()
    for deal in deals(n, now):
        page.append(deal)
        if len(page) == PAGE:
            with ctx.ledger.write() as conn:
                store_page(tick, conn, page)
            page = []
    if page:
        with ctx.ledger.write() as conn:
            store_page(tick, conn, page)
    wall = time.perf_counter() - started
    size = ledger_bytes(ctx.ledger.engine, url)
    with ctx.ledger.engine.connect() as conn:
        enrolled = int(conn.execute(text("select count(*) from enrollment")).scalar() or 0)
        tasks = int(conn.execute(text("select count(*) from task")).scalar() or 0)
    return {"deals": n, "database": url.split(":", 1)[0], "seconds": round(wall, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "deals_per_second": round(n / wall), "enrolled": enrolled, "tasks": tasks,
            "ledger_bytes": size, "bytes_per_enrolled_deal": round(size / max(enrolled, 1)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ledger_write")
    parser.add_argument("--deals", type=int, default=20_000)
    args = parser.parse_args(argv)
    from worker.telemetry import logs

    logs.configure("INFO", force_json=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.deals, Path(tmp))))
