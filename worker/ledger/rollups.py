"""The outcome report's rollups (issue 14, migration 0007), kept exact by the database.

`task_rollup`, `enrollment_rollup` and `segment_rollup` (worker/ledger/schema.py) hold the
counts `winback report` needs, grouped by what it filters and splits on (the loss day, the due
date, the status...). Triggers on `task` and `enrollment` keep them up to date in the same
transaction as every insert, update and delete, whatever code path makes it (plan, re-plan,
write, completion, cancel, stop, the daily cap's moves and skips, rebirth, purge): the report
then reads thousands of rows instead of millions, and no write path can forget a rollup.

All SQL here is built from the constants below (no input reaches it). Each rollup is
described once (key and value expressions over a row) and turned into the
triggers (SQLite: one per event; PostgreSQL: one PL/pgSQL function per table) and into the
recount from the base tables that backfills a ledger (`rebuild`) and that tests compare with.
"""

# ruff: noqa: S608 (all SQL here is built from this module's constants, no input reaches it)
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text

SENTINEL_DAY = "0001-01-01"  # a NULL loss day in a rollup key (never inside a report)
REBORN_WINDOWS = (90, 180, 365)  # reborn_within: the first of these >= the days, or 9999

Expr = Callable[[str, str], str]  # (row prefix "NEW." / "OLD." / "", dialect) -> SQL


def _day(p: str, d: str) -> str:
    return f"coalesce({p}day0, '{SENTINEL_DAY}')" if d == "sqlite" else (
        f"coalesce({p}day0, DATE '{SENTINEL_DAY}')")


def _utc_day(column: str, d: str) -> str:
    return f"date({column})" if d == "sqlite" else f"({column} AT TIME ZONE 'UTC')::date"


def _done(p: str, d: str) -> str:
    return (f"CASE WHEN NOT {p}completed THEN 0 WHEN {p}completed_at IS NULL THEN 3 "
            f"WHEN {_utc_day(p + 'completed_at', d)} <= {p}due_date THEN 1 ELSE 2 END")


def reborn_within(p: str, d: str) -> str:
    """SQL: the first of REBORN_WINDOWS that holds the days from loss to rebirth, 9999 past
    them all, 0 when not reborn (columns of prefix `p`, dialect `d`)."""
    days = (f"(julianday({_utc_day(p + 'reborn_at', d)}) - julianday({p}day0))" if d == "sqlite"
            else f"({_utc_day(p + 'reborn_at', d)} - {p}day0)")
    steps = " ".join(f"WHEN {days} <= {w} THEN {w}" for w in REBORN_WINDOWS)
    return f"CASE WHEN {p}reborn_at IS NULL OR {p}day0 IS NULL THEN 0 {steps} ELSE 9999 END"


def _won_amount(p: str, d: str) -> str:
    return (f"CASE WHEN {p}won_back_at IS NOT NULL THEN coalesce({p}won_back_amount, 0.0) "
            "ELSE 0.0 END")


def _col(name: str, default: str | None = None) -> Expr:
    if default is None:
        return lambda p, d: f"{p}{name}"
    return lambda p, d: f"coalesce({p}{name}, {default})"


def _const(sql: str) -> Expr:
    return lambda p, d: sql


@dataclass(frozen=True)
class Rollup:
    table: str
    base: str  # the table it counts
    keys: tuple[tuple[str, Expr], ...]
    values: tuple[tuple[str, Expr], ...]
    where: Expr | None = None


_TASK = Rollup("task_rollup", "task", (
    ("connection", _col("connection")), ("cadence", _col("cadence")), ("step", _col("step")),
    ("status", _col("status")), ("completed", _col("completed")),
    ("cancel_reason", _col("cancel_reason", "''")),
    ("day0", _day), ("due_date", _col("due_date")), ("done", _done)),
    (("n", _const("1")),))

_ENROLLMENT = Rollup("enrollment_rollup", "enrollment", (
    ("connection", _col("connection")), ("cadence", _col("cadence")),
    ("loss_reason", _col("loss_reason", "''")), ("status", _col("status")),
    ("stop_reason", _col("stop_reason", "''")), ("day0", _day),
    ("reborn_within", reborn_within), ("won", lambda p, d: f"({p}won_back_at IS NOT NULL)")),
    (("n", _const("1")), ("amount", _col("amount", "0.0")), ("won_amount", _won_amount)),
    lambda p, d: f"{p}cadence IS NOT NULL")

SEGMENT_DIMENSIONS = ("cadence", "loss_reason", "competitor", "owner_id")
_SEGMENTS = tuple(Rollup("segment_rollup", "enrollment", (
    ("connection", _col("connection")), ("dimension", _const(f"'{dim}'")),
    ("value", _col(dim, "''")), ("day0", _day)),
    (("n", _const("1")),
     ("won", lambda p, d: f"CASE WHEN {p}won_back_at IS NOT NULL THEN 1 ELSE 0 END"),
     ("won_amount", _won_amount)),
    lambda p, d: f"{p}cadence IS NOT NULL") for dim in SEGMENT_DIMENSIONS)

ROLLUPS: tuple[Rollup, ...] = (_TASK, _ENROLLMENT, *_SEGMENTS)
# The base columns a rollup reads: an update of none of them leaves the rollups alone.
WATCHED = {
    "task": ("connection", "cadence", "step", "status", "completed", "cancel_reason", "day0",
             "due_date", "completed_at"),
    "enrollment": ("connection", "cadence", "loss_reason", "competitor", "owner_id", "status",
                   "stop_reason", "day0", "reborn_at", "won_back_at", "won_back_amount",
                   "amount"),
}
TABLES = ("task_rollup", "enrollment_rollup", "segment_rollup")


def _where(r: Rollup, p: str, d: str) -> str:
    return r.where(p, d) if r.where is not None else "true"


def _add(r: Rollup, d: str) -> str:
    """Count the NEW row in (an upsert)."""
    names = [k for k, _ in r.keys] + [v for v, _ in r.values]
    exprs = [e("NEW.", d) for _, e in r.keys] + [e("NEW.", d) for _, e in r.values]
    sets = ", ".join(f"{v} = {r.table}.{v} + excluded.{v}" for v, _ in r.values)
    return (f"INSERT INTO {r.table} ({', '.join(names)}) SELECT {', '.join(exprs)} "
            f"WHERE {_where(r, 'NEW.', d)} "
            f"ON CONFLICT ({', '.join(k for k, _ in r.keys)}) DO UPDATE SET {sets}")


def _remove(r: Rollup, d: str) -> str:
    """Count the OLD row out."""
    sets = ", ".join(f"{v} = {v} - ({e('OLD.', d)})" for v, e in r.values)
    keys = " AND ".join(f"{k} = {e('OLD.', d)}" for k, e in r.keys)
    return f"UPDATE {r.table} SET {sets} WHERE {keys} AND {_where(r, 'OLD.', d)}"


def recount_sql(r: Rollup, d: str, rows: str | None = None) -> str:
    """The rollup's rows computed from the base table (`rows`: from these of its rows only,
    a subquery)."""
    keys = [e("", d) for _, e in r.keys]
    sums = [f"sum({e('', d)})" for _, e in r.values]
    source = f"({rows}) AS {r.base}" if rows else r.base
    return (f"SELECT {', '.join(keys + sums)} FROM {source} WHERE {_where(r, '', d)} "
            f"GROUP BY {', '.join(str(i + 1) for i in range(len(keys)))}")


def _changed(base: str, d: str) -> str:
    op = "IS NOT" if d == "sqlite" else "IS DISTINCT FROM"
    return " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in WATCHED[base])


# The last touch before a rebirth (enrollment.last_touch_step / last_touch_at): the latest of
# the deal's written tasks its owner completed (a known time, not closed by winback) at or
# before reborn_at; recomputed for the deal whenever one of its tasks or its reborn_at changes.
def _last(column: str, connection: str, deal: str, at: str) -> str:
    return (f"(SELECT t.{column} FROM task t WHERE t.connection = {connection} "
            f"AND t.deal_id = {deal} AND t.status = 'written' AND t.completed "
            "AND t.completed_at IS NOT NULL "
            "AND (t.cancel_reason IS NULL OR t.cancel_reason <> 'closed') "
            f"AND t.completed_at <= {at} ORDER BY t.completed_at DESC, t.step DESC LIMIT 1)")


def _touch_sets(connection: str, deal: str, at: str) -> str:
    return (f"last_touch_step = {_last('step', connection, deal, at)}, "
            f"last_touch_at = {_last('completed_at', connection, deal, at)}")


_ENROLLMENT_TOUCH = _touch_sets("enrollment.connection", "enrollment.deal_id",
                                "enrollment.reborn_at")


def _touch_of_task(p: str) -> str:
    """Recompute the last touch of the task row's deal (if it is reborn)."""
    return (f"UPDATE enrollment SET {_ENROLLMENT_TOUCH} WHERE connection = {p}connection "
            f"AND deal_id = {p}deal_id AND reborn_at IS NOT NULL")


def rebuild_last_touch(conn: Connection) -> None:
    conn.exec_driver_sql(f"UPDATE enrollment SET {_ENROLLMENT_TOUCH} WHERE reborn_at IS NOT NULL")


# A page of new enrollments (worker/ledger/batch.py) is counted into the rollups with one
# statement per rollup (`add_new`) instead of once per row: while `deferred` holds, the insert
# triggers stand aside. SQLite: a row in rollup_deferral (migration 0009; an empty table, the
# normal state, leaves every trigger on); PostgreSQL: the transaction-local setting below.
DEFER_SETTING = "winback.defer_rollups"


def _when_not_deferred(d: str, deferrable: bool) -> str:
    if not deferrable:
        return ""
    return "WHEN NOT EXISTS (SELECT 1 FROM rollup_deferral) " if d == "sqlite" else ""


def _pg_defer_check(deferrable: bool, returned: str) -> str:
    if not deferrable:
        return ""
    return (f"  IF TG_OP = 'INSERT' AND current_setting('{DEFER_SETTING}', true) = 'on' THEN\n"
            f"    RETURN {returned};\n  END IF;\n")


def trigger_ddl(d: str, *, deferrable: bool = True) -> list[str]:
    """The statements creating the triggers (d: 'sqlite' or 'postgresql'). `deferrable`: the
    insert triggers stand aside while `deferred` holds (migration 0009 on; 0007 created them
    without)."""
    out: list[str] = _touch_ddl(d, deferrable)
    skip = _when_not_deferred(d, deferrable)
    for base, watched in WATCHED.items():
        mine = [r for r in ROLLUPS if r.base == base]
        cols = ", ".join(watched)
        if d == "sqlite":
            adds = "".join(f"{_add(r, d)};\n" for r in mine)
            removes = "".join(f"{_remove(r, d)};\n" for r in mine)
            out += [
                f"CREATE TRIGGER trg_{base}_rollup_insert AFTER INSERT ON {base} {skip}BEGIN\n"
                f"{adds}END",
                f"CREATE TRIGGER trg_{base}_rollup_update AFTER UPDATE OF {cols} ON {base} "
                f"WHEN {_changed(base, d)} BEGIN\n{removes}{adds}END",
                f"CREATE TRIGGER trg_{base}_rollup_delete AFTER DELETE ON {base} BEGIN\n"
                f"{removes}END"]
        else:
            adds = "".join(f"    {_add(r, d)};\n" for r in mine)
            removes = "".join(f"    {_remove(r, d)};\n" for r in mine)
            out += [
                f"CREATE FUNCTION winback_{base}_rollup() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$\nBEGIN\n{_pg_defer_check(deferrable, 'NULL')}"
                f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n{removes}  END IF;\n"
                f"  IF TG_OP IN ('UPDATE', 'INSERT') THEN\n{adds}  END IF;\n"
                f"  RETURN NULL;\nEND\n$$",
                f"CREATE TRIGGER trg_{base}_rollup_insert AFTER INSERT OR DELETE ON {base} "
                f"FOR EACH ROW EXECUTE FUNCTION winback_{base}_rollup()",
                f"CREATE TRIGGER trg_{base}_rollup_update AFTER UPDATE OF {cols} ON {base} "
                f"FOR EACH ROW WHEN ({_changed(base, d)}) "
                f"EXECUTE FUNCTION winback_{base}_rollup()"]
    return out


def _touch_ddl(d: str, deferrable: bool) -> list[str]:
    # (A deferred page holds new enrollments only: no reborn_at, so no last touch to keep.)
    if d == "sqlite":
        mine = f"UPDATE enrollment SET {_ENROLLMENT_TOUCH} WHERE id = NEW.id"
        return [
            "CREATE TRIGGER trg_enrollment_touch_insert AFTER INSERT ON enrollment "
            f"WHEN NEW.reborn_at IS NOT NULL BEGIN\n{mine};\nEND",
            "CREATE TRIGGER trg_enrollment_touch_update AFTER UPDATE OF reborn_at ON enrollment "
            f"WHEN OLD.reborn_at IS NOT NEW.reborn_at BEGIN\n{mine};\nEND",
            f"CREATE TRIGGER trg_task_touch_insert AFTER INSERT ON task "
            f"{_when_not_deferred(d, deferrable)}BEGIN\n"
            f"{_touch_of_task('NEW.')};\nEND",
            "CREATE TRIGGER trg_task_touch_update AFTER UPDATE OF connection, deal_id, step, "
            "status, completed, completed_at, cancel_reason ON task BEGIN\n"
            f"{_touch_of_task('OLD.')};\n{_touch_of_task('NEW.')};\nEND",
            "CREATE TRIGGER trg_task_touch_delete AFTER DELETE ON task BEGIN\n"
            f"{_touch_of_task('OLD.')};\nEND"]
    step = _last("step", "NEW.connection", "NEW.deal_id", "NEW.reborn_at")
    at = _last("completed_at", "NEW.connection", "NEW.deal_id", "NEW.reborn_at")
    return [
        "CREATE FUNCTION winback_enrollment_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{_pg_defer_check(deferrable, 'NEW')}"
        f"  NEW.last_touch_step := {step};\n  NEW.last_touch_at := {at};\n"
        "  RETURN NEW;\nEND\n$$",
        "CREATE TRIGGER trg_enrollment_touch BEFORE INSERT OR UPDATE OF reborn_at ON "
        "enrollment FOR EACH ROW EXECUTE FUNCTION winback_enrollment_touch()",
        "CREATE FUNCTION winback_task_touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{_pg_defer_check(deferrable, 'NULL')}"
        "  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n"
        f"    {_touch_of_task('OLD.')};\n  END IF;\n"
        f"  IF TG_OP IN ('UPDATE', 'INSERT') THEN\n    {_touch_of_task('NEW.')};\n"
        "  END IF;\n  RETURN NULL;\nEND\n$$",
        "CREATE TRIGGER trg_task_touch AFTER INSERT OR DELETE OR UPDATE OF connection, deal_id, "
        "step, status, completed, completed_at, cancel_reason ON task FOR EACH ROW "
        "EXECUTE FUNCTION winback_task_touch()"]


def drop_ddl(d: str) -> list[str]:
    if d == "sqlite":
        out = [f"DROP TRIGGER IF EXISTS trg_{t}_touch_{e}" for t, e in (
            ("enrollment", "insert"), ("enrollment", "update"), ("task", "insert"),
            ("task", "update"), ("task", "delete"))]
    else:
        out = ["DROP TRIGGER IF EXISTS trg_enrollment_touch ON enrollment",
               "DROP TRIGGER IF EXISTS trg_task_touch ON task",
               "DROP FUNCTION IF EXISTS winback_enrollment_touch()",
               "DROP FUNCTION IF EXISTS winback_task_touch()"]
    for base in WATCHED:
        events = ("insert", "update", "delete") if d == "sqlite" else ("insert", "update")
        out += [f"DROP TRIGGER IF EXISTS trg_{base}_rollup_{e}" + ("" if d == "sqlite"
                else f" ON {base}") for e in events]
        if d != "sqlite":
            out.append(f"DROP FUNCTION IF EXISTS winback_{base}_rollup()")
    return out


def install(conn: Connection, *, deferrable: bool = True) -> None:
    for statement in trigger_ddl(conn.dialect.name, deferrable=deferrable):
        conn.exec_driver_sql(statement)


def uninstall(conn: Connection) -> None:
    for statement in drop_ddl(conn.dialect.name):
        conn.exec_driver_sql(statement)


def rebuild(conn: Connection) -> None:
    """Recount every rollup from the base tables (the migration's backfill; a bulk load)."""
    d = conn.dialect.name
    for table in TABLES:
        conn.exec_driver_sql(f"DELETE FROM {table}")
    for r in ROLLUPS:
        names = [k for k, _ in r.keys] + [v for v, _ in r.values]
        conn.exec_driver_sql(f"INSERT INTO {r.table} ({', '.join(names)}) {recount_sql(r, d)}")
    rebuild_last_touch(conn)


def _of_deals(base: str, d: str) -> str:
    """The base table's rows of the page's deals (:deal_ids) of :connection, found deal by
    deal through its (connection, deal_id) index. (SQLite: a plain IN scans the whole
    connection's rows through the covering outcome index, so the page drives a join;
    PostgreSQL: a join with unnest does the same scan, `= ANY` is an index condition.)"""
    if d == "sqlite":
        return (f"SELECT b.* FROM json_each(:deal_ids) AS page CROSS JOIN {base} AS b "
                "ON b.connection = :connection AND b.deal_id = page.value")
    return (f"SELECT b.* FROM {base} AS b WHERE b.connection = :connection "
            "AND b.deal_id = ANY(CAST(:deal_ids AS text[]))")


def _deal_ids(d: str, deal_ids: Sequence[str]) -> object:
    return json.dumps(list(deal_ids)) if d == "sqlite" else list(deal_ids)


def have_tasks(conn: Connection, connection: str, deal_ids: Sequence[str]) -> bool:
    """Whether any of these deals already has a task row (then its page is counted row by
    row: `add_new` counts every task of the page's deals)."""
    d = conn.dialect.name
    row = conn.execute(text(f"SELECT 1 FROM ({_of_deals('task', d)}) AS t LIMIT 1"),
                       {"connection": connection, "deal_ids": _deal_ids(d, deal_ids)}).first()
    return row is not None


@contextmanager
def deferred(conn: Connection) -> Iterator[None]:
    """Inserts in this block leave the rollups (and the last touch) alone: the caller counts
    them in with `add_new` before its transaction ends. Updates and deletes are counted as
    ever. Ends with the block; when the block raises, the caller's transaction is rolled
    back, and the deferral with it (both are part of the transaction: a row, a
    transaction-local setting), so nothing is reset here then (a PostgreSQL transaction in
    error would refuse the statement and hide the error)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("INSERT INTO rollup_deferral (deferred) VALUES (1)")
        yield
        conn.exec_driver_sql("DELETE FROM rollup_deferral")
        return
    conn.execute(text("SELECT set_config(:name, 'on', true)"), {"name": DEFER_SETTING})
    yield
    conn.execute(text("SELECT set_config(:name, 'off', true)"), {"name": DEFER_SETTING})


def add_new(conn: Connection, connection: str, deal_ids: Sequence[str]) -> None:
    """Count a page of new enrollments, and their tasks, into every rollup: one grouped
    upsert per rollup, the same keys and values the triggers would have added row by row."""
    d = conn.dialect.name
    params = {"connection": connection, "deal_ids": _deal_ids(d, deal_ids)}
    for r in ROLLUPS:
        names = [k for k, _ in r.keys] + [v for v, _ in r.values]
        sets = ", ".join(f"{v} = {r.table}.{v} + excluded.{v}" for v, _ in r.values)
        conn.execute(text(
            f"INSERT INTO {r.table} ({', '.join(names)}) {recount_sql(r, d, _of_deals(r.base, d))} "
            f"ON CONFLICT ({', '.join(k for k, _ in r.keys)}) DO UPDATE SET {sets}"), params)
