"""The new enrollments of a page, stored together: a first sync enrolls up to a page of deals
per transaction, and one multi-row INSERT per table (enrollments, their tasks, their skipped
steps, their events) costs a fraction of a statement per deal. Same rows, same transaction,
same conflict rules as one deal at a time (`Ledger.enroll`, `outcomes.record_skips`,
`Ledger.record`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, insert, text
from sqlalchemy.pool import Pool

from worker.cadence.engine import Skipped
from worker.cadence.tasks import PlannedTask
from worker.ledger import rollups
from worker.ledger.outcomes import skip_rows
from worker.ledger.records import NewPlan, task_values
from worker.ledger.schema import enrollment, event, skip_outcome, task
from worker.ledger.store import _insert, chunks


@dataclass
class NewEnrollments:
    """Rows waiting for the end of the page (`flush`, in the page's transaction)."""

    connection: str
    enrollments: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    skips: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    by_cadence: dict[str, tuple[int, int]] = field(default_factory=dict)  # deals, tasks

    def enroll(self, deal_id: str, plan: NewPlan, tasks: Sequence[PlannedTask],
               skipped: Sequence[Skipped], now: datetime) -> int:
        """A newly lost deal's enrollment, tasks and skipped steps; how many tasks."""
        self.enrollments.append({"connection": self.connection, "deal_id": deal_id,
                                 "enrolled_at": now, **plan.values()})
        self.tasks.extend(task_values(t, now, plan.day0) for t in tasks)
        self.skips.extend(skip_rows(self.connection, deal_id, plan.cadence, skipped, now))
        return len(tasks)

    def enrolled(self, deal_id: str, cadence: str, tasks: int, at: datetime) -> None:
        """The deal.enrolled event of a deal enrolled here, counted per cadence."""
        self.events.append({"connection": self.connection, "deal_id": deal_id,
                            "kind": "deal.enrolled", "at": at,
                            "data": {"cadence": cadence, "tasks": tasks}})
        deals, planned = self.by_cadence.get(cadence, (0, 0))
        self.by_cadence[cadence] = (deals + 1, planned + tasks)

    def flush(self, conn: Connection) -> None:
        """Write what is waiting, counted into the rollups a page at a time: one grouped
        statement per rollup instead of a trigger per row (none of these deals has a task
        row yet, else its tasks are counted row by row, as ever)."""
        if self.enrollments:
            deal_ids = [row["deal_id"] for row in self.enrollments]
            if rollups.have_tasks(conn, self.connection, deal_ids):
                self._insert_plans(conn)
            else:
                with rollups.deferred(conn):
                    self._insert_plans(conn)
                rollups.add_new(conn, self.connection, deal_ids)
            keep_statistics(conn, len(self.enrollments))
        skips = _insert(conn, skip_outcome).on_conflict_do_nothing()
        for part in chunks(self.skips):
            conn.execute(skips, list(part))
        for part in chunks(self.events):
            conn.execute(insert(event), list(part))
        self.enrollments, self.tasks, self.skips, self.events = [], [], [], []

    def _insert_plans(self, conn: Connection) -> None:
        for part in chunks(self.enrollments):
            conn.execute(insert(enrollment), list(part))
        statement = _insert(conn, task).on_conflict_do_nothing(index_elements=["key"])
        for part in chunks(self.tasks):
            conn.execute(statement, list(part))


# PostgreSQL plans the page's look-ups (`Ledger.enrollments`, the rollups' `= ANY`) from the
# table statistics; during a first sync those say the enrollment table holds the few rows it
# held when autovacuum last looked, and a look-up of a page's deals then scans every
# enrollment of the connection (measured: 263 ms a page at 20,000 deals, growing with the
# table). So the tables a first sync fills are analyzed when they have grown by a fifth since
# (and after the first ANALYZE_FIRST rows): about 30 times over 1,000,000 deals. (A database
# user that does not own the tables gets PostgreSQL's "skipping" warning, not an error.)
ANALYZE_FIRST = 2000
# Per database (its pool: the engine a connection names can be a per-call options copy).
_GROWTH: WeakKeyDictionary[Pool, list[int]] = WeakKeyDictionary()  # [rows known, since]


def keep_statistics(conn: Connection, added: int) -> None:
    if conn.dialect.name != "postgresql":
        return  # (SQLite's planner keeps to the (connection, deal_id) index without them)
    state = _GROWTH.get(conn.engine.pool)
    if state is None:
        known = conn.execute(text("SELECT greatest(reltuples, 0) FROM pg_class "
                                  "WHERE oid = 'enrollment'::regclass")).scalar()
        state = _GROWTH[conn.engine.pool] = [int(known or 0), 0]
    state[1] += added
    if state[1] >= max(ANALYZE_FIRST, state[0] // 5):
        conn.exec_driver_sql("ANALYZE enrollment, task")
        state[0], state[1] = state[0] + state[1], 0
