"""`winback report` on a large ledger: N lost deals (default 1,000,000) over the last 400
days, 5 tasks each (4 written, of which about half completed, some late; the rest planned),
a tenth reborn, a third of those won back, some steps skipped. The ledger is filled with bulk
inserts (not a sync: the report only reads it); then the report's queries are timed.

    python -m bench report --deals 1000000 [--database-url postgresql://...] [--keep FILE]

Both fills generate the rows inside the database (SQLite: recursive CTEs; PostgreSQL:
generate_series), drop the indexes and the rollup triggers for it and recount the rollups
after, as a restore would.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from worker.ledger import migrate, rollups
from worker.ledger.db import make_engine
from worker.ledger.records import EnrollmentStatus, StopReason, TaskStatus
from worker.ledger.schema import enrollment, skip_outcome, task
from worker.ledger.store import Ledger
from worker.views.reports import CadenceShape, outcome_report, winback_report

TODAY = date(2026, 12, 1)
CADENCES = ("lost-to-competitor", "lost-to-no-decision", "lost-on-price", "disqualified")
STEPS = ("thank-you", "post-mortem", "check-in", "ninety-day", "quarterly")
REASONS = ("Lost to competitor", "No decision", "Price", "Timing", "Disqualified")
COMPETITORS = ("Globex", "Initech", "Umbrella", None)
BATCH = 20_000


def fill_sqlite(url: str, deals: int) -> None:
    """The same ledger generated inside SQLite (recursive CTEs): seconds instead of the
    Python loop's minutes; indexes built after the rows, then ANALYZE."""
    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    dropped = _drop_indexes(engine)
    with engine.begin() as conn:
        rollups.uninstall(conn)  # counted once after the fill, as a restore would
    today = TODAY.isoformat()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"""
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {deals - 1}),
base AS MATERIALIZED (SELECT i, abs(random()) % 400 AS back, abs(random()) % 100 AS r,
                      abs(random()) % 199 + 1 AS later, abs(random()) % 4 AS comp FROM n),
deal AS (SELECT i, date('{today}', '-' || back || ' days') AS day0,
         r < 10 AS reborn, r < 3 AS won, later, comp FROM base)
INSERT INTO enrollment (connection, deal_id, cycle, cadence, rule_version, status,
  stop_reason, account_id, owner_id, loss_reason, competitor, amount, day0, deal_json,
  enrolled_at, reborn_at, reborn_deal_id, won_back_at, won_back_amount, waiting)
SELECT 'bench', printf('D%07d', i), 1,
  CASE i % 4 WHEN 0 THEN '{CADENCES[0]}' WHEN 1 THEN '{CADENCES[1]}'
             WHEN 2 THEN '{CADENCES[2]}' ELSE '{CADENCES[3]}' END, 'v1',
  CASE WHEN reborn THEN 'stopped' ELSE 'active' END,
  CASE WHEN won THEN 'won' WHEN reborn THEN
       CASE i % 3 WHEN 0 THEN 'reopened' WHEN 1 THEN 'new_deal' ELSE 'meeting' END END,
  printf('A%07d', i), printf('U%03d', i % 400),
  CASE i % 5 WHEN 0 THEN '{REASONS[0]}' WHEN 1 THEN '{REASONS[1]}' WHEN 2 THEN '{REASONS[2]}'
             WHEN 3 THEN '{REASONS[3]}' ELSE '{REASONS[4]}' END,
  CASE comp WHEN 0 THEN 'Globex' WHEN 1 THEN 'Initech' WHEN 2 THEN 'Umbrella' END,
  1000 + (i * 7919) % 89000, day0, '{{"id": "' || printf('D%07d', i) || '"}}',
  '{today} 12:00:00.000000',
  CASE WHEN reborn THEN datetime(day0, '+' || later || ' days') END,
  CASE WHEN reborn THEN printf('D%07d', i) END,
  CASE WHEN won THEN datetime(day0, '+' || later || ' days') END,
  CASE WHEN won THEN 10000.0 END, 0
FROM deal""")
        conn.exec_driver_sql(f"""
WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < {len(STEPS) - 1}),
t AS MATERIALIZED (
  SELECT e.id AS eid, e.deal_id, e.cadence, e.owner_id, e.day0, j,
         date(e.day0, '+' || (30 * j) || ' days') AS due, abs(random()) % 2 AS coin,
         abs(random()) % 8 - 2 AS shift
  FROM enrollment e CROSS JOIN k WHERE e.cadence != 'disqualified')
INSERT INTO task (key, connection, deal_id, cadence, step, occurrence, owner_id, due_date,
  remind_at, create_after, channel, priority, status, crm_id, completed, completed_at,
  created_at, updated_at, attempts, close_requested, day0)
SELECT 'k' || eid || '-' || j, 'bench', deal_id, cadence || '@1',
  CASE j WHEN 0 THEN '{STEPS[0]}' WHEN 1 THEN '{STEPS[1]}' WHEN 2 THEN '{STEPS[2]}'
         WHEN 3 THEN '{STEPS[3]}' ELSE '{STEPS[4]}' END, 1, owner_id, due,
  due || ' 14:00:00.000000', due || ' 14:00:00.000000', 'call', 'normal',
  CASE WHEN j < 4 AND due <= date('{today}', '+7 days') THEN 'written' ELSE 'planned' END,
  CASE WHEN j < 4 AND due <= date('{today}', '+7 days') THEN 'T' || eid || '-' || j END,
  j < 4 AND due <= date('{today}', '+7 days') AND coin = 1,
  CASE WHEN j < 4 AND due <= date('{today}', '+7 days') AND coin = 1
       THEN datetime(due, shift || ' days', '+15 hours') END,
  '{today} 12:00:00.000000', '{today} 12:00:00.000000', 0, 0, day0
FROM t""")
        conn.exec_driver_sql(f"""
INSERT INTO skip_outcome (connection, deal_id, step, occurrence, contact, cadence, reason,
  due_date, decided_at)
SELECT 'bench', deal_id, 'quarterly', 1, '', cadence,
  CASE abs(random()) % 4 WHEN 0 THEN 'grace' WHEN 1 THEN 'activity' WHEN 2 THEN 'pause'
       ELSE 'cap' END, day0, '{today} 12:00:00.000000'
FROM enrollment WHERE id % 5 = 0 AND cadence != 'disqualified'""")
    for index in dropped:
        index.create(engine)
    _rollups(engine)
    engine.dispose()


def fill_postgresql(url: str, deals: int) -> None:
    """The same ledger generated inside PostgreSQL (generate_series), as fill_sqlite does
    (mod(), not the modulo operator: the driver reads that as a placeholder)."""
    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    dropped = _drop_indexes(engine)
    with engine.begin() as conn:
        rollups.uninstall(conn)
    today = f"DATE '{TODAY.isoformat()}'"
    noon = f"TIMESTAMPTZ '{TODAY.isoformat()} 12:00:00+00'"
    def pick(expr: str, values: tuple[str | None, ...]) -> str:
        whens = " ".join(f"WHEN {i} THEN " + ("NULL" if v is None else f"'{v}'")
                         for i, v in enumerate(values))
        return f"CASE {expr} {whens} END"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"""
WITH base AS MATERIALIZED (
  SELECT i, floor(random() * 400)::int AS back, floor(random() * 100)::int AS r,
         floor(random() * 199)::int + 1 AS later, floor(random() * 4)::int AS comp
  FROM generate_series(0, {deals - 1}) AS i),
deal AS (SELECT i, {today} - back AS day0, r < 10 AS reborn, r < 3 AS won, later, comp,
                'D' || lpad(i::text, 7, '0') AS id FROM base)
INSERT INTO enrollment (connection, deal_id, cycle, cadence, rule_version, status,
  stop_reason, account_id, owner_id, loss_reason, competitor, amount, day0, deal_json,
  enrolled_at, reborn_at, reborn_deal_id, won_back_at, won_back_amount, waiting)
SELECT 'bench', id, 1, {pick("mod(i, 4)", CADENCES)}, 'v1',
  CASE WHEN reborn THEN 'stopped' ELSE 'active' END,
  CASE WHEN won THEN 'won' WHEN reborn THEN
       {pick("mod(i, 3)", ("reopened", "new_deal", "meeting"))} END,
  'A' || lpad(i::text, 7, '0'), 'U' || lpad(mod(i, 400)::text, 3, '0'),
  {pick("mod(i, 5)", REASONS)}, {pick("comp", COMPETITORS)},
  1000 + mod(i::bigint * 7919, 89000), day0, json_build_object('id', id), {noon},
  CASE WHEN reborn THEN (day0 + later)::timestamp AT TIME ZONE 'UTC' END,
  CASE WHEN reborn THEN id END,
  CASE WHEN won THEN (day0 + later)::timestamp AT TIME ZONE 'UTC' END,
  CASE WHEN won THEN 10000.0 END, 0
FROM deal""")
        written = f"j < 4 AND due <= {today} + 7"
        conn.exec_driver_sql(f"""
WITH t AS MATERIALIZED (
  SELECT e.id AS eid, e.deal_id, e.cadence, e.owner_id, e.day0, j, e.day0 + 30 * j AS due,
         floor(random() * 2)::int AS coin, floor(random() * 8)::int - 2 AS shift
  FROM enrollment e CROSS JOIN generate_series(0, {len(STEPS) - 1}) AS j
  WHERE e.cadence <> 'disqualified')
INSERT INTO task (key, connection, deal_id, cadence, step, occurrence, owner_id, due_date,
  remind_at, create_after, channel, priority, status, crm_id, completed, completed_at,
  created_at, updated_at, attempts, close_requested, day0)
SELECT 'k' || eid || '-' || j, 'bench', deal_id, cadence || '@1', {pick("j", STEPS)}, 1,
  owner_id, due, (due + TIME '14:00')::timestamp AT TIME ZONE 'UTC',
  (due + TIME '14:00')::timestamp AT TIME ZONE 'UTC', 'call', 'normal',
  CASE WHEN {written} THEN 'written' ELSE 'planned' END,
  CASE WHEN {written} THEN 'T' || eid || '-' || j END,
  {written} AND coin = 1,
  CASE WHEN {written} AND coin = 1
       THEN (due + shift + TIME '15:00')::timestamp AT TIME ZONE 'UTC' END,
  {noon}, {noon}, 0, false, day0
FROM t""")
        conn.exec_driver_sql(f"""
INSERT INTO skip_outcome (connection, deal_id, step, occurrence, contact, cadence, reason,
  due_date, decided_at)
SELECT 'bench', deal_id, 'quarterly', 1, '', cadence,
  {pick("floor(random() * 4)::int", ("grace", "activity", "pause", "cap"))}, day0, {noon}
FROM enrollment WHERE mod(id, 5) = 0 AND cadence <> 'disqualified'""")
    for index in dropped:
        index.create(engine)
    _rollups(engine)
    engine.dispose()


def _rollups(engine: Any) -> None:
    """The rollups recounted from the rows (as migration 0007 does) and their triggers back."""
    with engine.begin() as conn:
        rollups.rebuild(conn)
        rollups.install(conn)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def fill(url: str, deals: int, seed: int = 7) -> None:
    engine = make_engine(url, pool_size=1)
    migrate.upgrade(engine)
    rnd = random.Random(seed)
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    skips: list[dict[str, Any]] = []
    task_id = 0

    sqlite = url.startswith("sqlite")
    dropped = _drop_indexes(engine) if sqlite else []
    with engine.begin() as conn:
        rollups.uninstall(conn)

    def flush(force: bool = False) -> None:
        with engine.begin() as conn:
            for table, items, size in ((enrollment, rows, BATCH), (task, tasks, 5 * BATCH),
                                       (skip_outcome, skips, BATCH)):
                if items and (force or len(items) >= size):
                    if sqlite:  # the DB-API directly: SQLAlchemy's per-row work would dominate
                        _bulk(conn, table, items)
                    else:
                        conn.execute(insert(table), items)
                    items.clear()

    for n in range(deals):
        deal_id = f"D{n:07d}"
        cadence = CADENCES[n % len(CADENCES)]
        day0 = TODAY - timedelta(days=rnd.randrange(400))
        reborn = rnd.random() < 0.1
        won = reborn and rnd.random() < 0.33
        reborn_at = (datetime.combine(day0, datetime.min.time(), tzinfo=UTC)
                     + timedelta(days=rnd.randrange(1, 200))) if reborn else None
        rows.append({
            "connection": "bench", "deal_id": deal_id, "cycle": 1, "cadence": cadence,
            "rule_version": "v1", "status": EnrollmentStatus.STOPPED if reborn
            else EnrollmentStatus.ACTIVE,
            "stop_reason": (StopReason.WON if won else rnd.choice(
                (StopReason.REOPENED, StopReason.NEW_DEAL, StopReason.MEETING)))
            if reborn else None,
            "account_id": f"A{n:07d}", "owner_id": f"U{n % 400:03d}",
            "loss_reason": REASONS[n % len(REASONS)], "competitor": rnd.choice(COMPETITORS),
            "amount": float(rnd.randrange(1000, 90000)), "day0": day0,
            "deal_json": {"id": deal_id}, "enrolled_at": now, "reborn_at": reborn_at,
            "won_back_at": reborn_at if won else None,
            "reborn_deal_id": deal_id if reborn else None,
            "won_back_amount": 10000.0 if won else None, "waiting": 0})
        if cadence == "disqualified":
            flush()
            continue
        for index, step in enumerate(STEPS):
            task_id += 1
            due = day0 + timedelta(days=30 * index)
            written = index < 4 and due <= TODAY + timedelta(days=7)
            done = written and rnd.random() < 0.5
            done_at = (datetime.combine(due, datetime.min.time(), tzinfo=UTC)
                       + timedelta(days=rnd.randrange(-2, 6), hours=15)) if done else None
            moment = datetime.combine(due, datetime.min.time(), tzinfo=UTC)
            tasks.append({
                "id": task_id, "key": f"k{task_id}", "connection": "bench",
                "deal_id": deal_id, "cadence": f"{cadence}@1", "step": step,
                "occurrence": 1, "owner_id": f"U{n % 400:03d}", "due_date": due,
                "remind_at": moment, "create_after": moment, "channel": "call",
                "priority": "normal",
                "status": TaskStatus.WRITTEN if written else TaskStatus.PLANNED,
                "crm_id": f"T{task_id}" if written else None, "completed": done,
                "completed_at": done_at, "created_at": now, "updated_at": now,
                "attempts": 0, "close_requested": False, "day0": day0})
        if rnd.random() < 0.2:
            skips.append({"connection": "bench", "deal_id": deal_id, "step": "quarterly",
                          "occurrence": 1, "contact": "", "cadence": cadence,
                          "reason": rnd.choice(("grace", "activity", "pause", "cap")),
                          "detail": None, "due_date": day0, "decided_at": now})
        flush()
    flush(force=True)
    for index in dropped:  # built once at the end, as a restore would
        index.create(engine)
    _rollups(engine)
    engine.dispose()


def _drop_indexes(engine: Any) -> list[Any]:
    """The task and enrollment indexes, dropped for the fill (SQLite) and created after."""
    found = [i for table in (task, enrollment) for i in table.indexes]
    for index in found:
        index.drop(engine)
    return found


def _bulk(conn: Any, table: Any, items: list[dict[str, Any]]) -> None:
    names = list(items[0])
    processors = {c.name: c.type.bind_processor(conn.dialect) for c in table.columns}
    columns = ", ".join(f'"{n}"' for n in names)
    marks = ", ".join("?" for _ in names)
    raw = conn.connection.driver_connection
    assert raw is not None
    def value(name: str, item: dict[str, Any]) -> Any:
        process = processors.get(name)
        return process(item[name]) if process is not None else item[name]
    raw.executemany(f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})',
                    [tuple(value(n, item) for n in names) for item in items])


def time_report(url: str) -> dict[str, Any]:
    engine = make_engine(url, pool_size=1)
    ledger = Ledger(engine)
    shapes = {c: CadenceShape(c != "disqualified", TODAY - timedelta(days=3 * 365))
              for c in CADENCES}
    since = TODAY - timedelta(days=365)
    started = time.monotonic()
    payload = outcome_report(ledger, ["bench"], since, TODAY, shapes)
    outcome = time.monotonic() - started
    started = time.monotonic()
    winback_report(ledger, ["bench"], since)
    legacy = time.monotonic() - started
    engine.dispose()
    return {"outcome_report_seconds": round(outcome, 2),
            "deal_and_step_tables_seconds": round(legacy, 2),
            "reborn_deals": payload["reborn"]["count"],
            "written": sum(r["written"] for r in payload["by_step_outcome"])}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench report")
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database (default: a SQLite file)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="SQLite file to fill (or reuse when it exists)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="winback-bench-report-"))
    path = args.keep or tmp / "ledger.db"
    url = args.database_url or f"sqlite:///{path}"
    started = time.monotonic()
    if args.database_url:
        fill_postgresql(url, args.deals)
    elif not path.exists():
        fill_sqlite(url, args.deals)
    fill_seconds = time.monotonic() - started
    result = {"deals": args.deals, "database": url.split(":", 1)[0],
              "fill_seconds": round(fill_seconds, 1), **time_report(url)}
    print(json.dumps(result))
