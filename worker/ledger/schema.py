"""The ledger's tables: one SQLAlchemy Core schema for SQLite and PostgreSQL.

- `connection_state`: per connection the lease (holder, expiry, fencing epoch), the schedule
  (next_due), the watermark and the last tick's outcome.
- `enrollment`: one row per (connection, deal): which cadence, its rule version, the deal's
  last snapshot, and why and when it stopped (the win-back report reads these).
- `task`: every planned task under its unique key, with its status
  (planned -> queued -> sending -> written | failed; or skipped / cancelled) and CRM id.
- `plan_input`: what the planner read from the configuration for a deal (cadence, owner,
  zone, holidays, defaults), once per distinct fingerprint (`enrollment.rule_version`);
  `plan --diff` reads it to say which setting moves a task.
- `activity`: the CRM activities read for a connection (calls, meetings, emails, notes,
  tasks, winback's own included), upserted on (connection, id); `activity_link` says which
  tracked deals each one concerns (its deal, a deal of its account, a stakeholder contact).
- `skip_decision`: a task `skip_if` did not write, with the activity that caused it (a
  decision, once made, stays: the planner gets it back on every re-plan).
- `skip_outcome`: every step a plan skipped (grace, activity, pause, cap...), for the report.
- `event`: the audit trail of decisions (enrolled, stopped, reborn, won back, fallback owner).

Idempotency lives in unique constraints (`task.key`, `enrollment(connection, deal_id)`),
never in check-then-insert.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite has no zone-aware type: store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


connection_state = Table(
    "connection_state", metadata,
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("owner", String(200)),
    Column("lease_until", UTCDateTime()),
    Column("epoch", BigInteger, nullable=False, default=0),
    # Taken with the PostgreSQL advisory lock (leases.py): may be taken over before
    # lease_until once the holder's session is gone.
    Column("lease_locked", Boolean, nullable=False, default=False),
    Column("next_due", UTCDateTime()),
    Column("watermark", UTCDateTime()),
    Column("backfill_done", Boolean, nullable=False, default=False),
    Column("verified_at", UTCDateTime()),  # last re-read of every tracked deal
    Column("activity_watermark", UTCDateTime()),  # the activity read's own watermark
    Column("last_tick_at", UTCDateTime()),
    Column("last_tick_result", String(32)),
    Column("last_tick_seconds", Float),
    Column("last_error", Text),
    Column("last_success_at", UTCDateTime()),
    Column("status_read_at", UTCDateTime()),  # the last cheap task status read (once a day)
    Column("api_used", Integer),
    Column("api_limit", Integer),
)

enrollment = Table(
    "enrollment", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection", String(64), nullable=False),
    Column("deal_id", String(64), nullable=False),
    Column("cycle", Integer, nullable=False, default=1),
    Column("cadence", String(64)),
    Column("rule_version", String(32)),  # the plan fingerprint (worker/cadence/fingerprint.py)
    Column("owner_input", Text),  # the CRM owner as planned: [id, active, zone, country, subdiv]
    Column("status", String(16), nullable=False),  # EnrollmentStatus (records.py)
    Column("stop_reason", String(32)),  # reopened | won | deleted | new_deal | ...
    Column("account_id", String(64)),
    Column("owner_id", String(64)),
    Column("loss_reason", String(255)),
    Column("competitor", String(255)),
    Column("experiment", String(64)),  # the cadence's experiment id when the arm was drawn
    Column("arm", String(64)),  # the deal's arm in it: holdout | base | a variant (fixed)
    Column("amount", Float),
    Column("day0", Date),
    Column("deal_json", JSON, nullable=False),
    Column("deal_modified_at", UTCDateTime()),
    Column("enrolled_at", UTCDateTime(), nullable=False),
    Column("stopped_at", UTCDateTime()),
    Column("reborn_at", UTCDateTime()),
    Column("reborn_deal_id", String(64)),
    Column("won_back_at", UTCDateTime()),
    Column("won_back_amount", Float),
    # The next moment the plan changes by itself (a skip_if task's create date, a pause's
    # end, a max_wait deadline), or now when its activity changed: re-planned then.
    Column("replan_at", UTCDateTime()),
    Column("waiting", Integer, nullable=False, default=0),  # steps waiting for a completion
    # A reborn deal's last touch: its latest task completed by the owner at or before
    # reborn_at (kept by triggers, worker/ledger/rollups.py; migration 0007).
    Column("last_touch_step", String(64)),
    Column("last_touch_at", UTCDateTime()),
    UniqueConstraint("connection", "deal_id", name="uq_enrollment_connection_deal"),
)
Index("ix_enrollment_account", enrollment.c.connection, enrollment.c.account_id,
      enrollment.c.status)
Index("ix_enrollment_reborn_deal", enrollment.c.connection, enrollment.c.reborn_deal_id)
# Finding the enrollments a rule edit affects groups by these (an index-only scan).
Index("ix_enrollment_rules", enrollment.c.connection, enrollment.c.status, enrollment.c.cadence,
      enrollment.c.rule_version, enrollment.c.owner_input)

# The experiments report's read per arm (covering, partial: experiments only; 0010).
Index("ix_enrollment_experiment", enrollment.c.connection, enrollment.c.experiment,
      enrollment.c.cadence, enrollment.c.arm, enrollment.c.day0, enrollment.c.reborn_at,
      enrollment.c.won_back_at, enrollment.c.won_back_amount,
      sqlite_where=enrollment.c.experiment.isnot(None),
      postgresql_where=enrollment.c.experiment.isnot(None))
Index("ix_enrollment_replan", enrollment.c.connection, enrollment.c.replan_at)
# The outcome report's one scan of the enrollments (covering: the table rows carry deal_json).
Index("ix_enrollment_outcome", enrollment.c.connection, enrollment.c.cadence,
      enrollment.c.loss_reason, enrollment.c.competitor, enrollment.c.owner_id,
      enrollment.c.status, enrollment.c.stop_reason, enrollment.c.day0,
      enrollment.c.reborn_at, enrollment.c.won_back_at, enrollment.c.won_back_amount,
      enrollment.c.amount)

plan_input = Table(
    "plan_input", metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("inputs", JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

task = Table(
    "task", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("connection", String(64), nullable=False),
    Column("deal_id", String(64), nullable=False),
    Column("cadence", String(80), nullable=False),
    Column("step", String(64), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("contact_id", String(64)),
    Column("owner_id", String(64), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("remind_at", UTCDateTime(), nullable=False),
    Column("create_after", UTCDateTime(), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # TaskStatus (records.py)
    Column("cancel_reason", String(32)),
    Column("subject", Text),
    Column("body", Text),
    Column("crm_id", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_epoch", BigInteger),
    Column("sending_since", UTCDateTime()),
    Column("last_error", Text),
    Column("close_requested", Boolean, nullable=False, default=False),
    Column("completed", Boolean, nullable=False, default=False),
    Column("completed_at", UTCDateTime()),  # when the CRM says it was completed, if known
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("written_at", UTCDateTime()),
    # The per-owner daily cap (issue 14): the due date as planned, before the cap moved it,
    # and the last day the cap may move it to (grace, horizon); NULL: not planned under a cap.
    Column("planned_due", Date),
    Column("latest_due", Date),
    Column("day0", Date),  # the loss day of its enrollment (cycle): the report filters on it
)
Index("ix_task_queue", task.c.connection, task.c.status, task.c.create_after)
Index("ix_task_owner_day", task.c.connection, task.c.owner_id, task.c.due_date)
# (connection, deal_id, status): the stop and re-plan updates filter on all three; with only
# two columns SQLite prefers ix_task_queue and scans every open task of the connection.
Index("ix_task_deal", task.c.connection, task.c.deal_id, task.c.status)
# The outcome report's per-step counts read only this index (covering), in its order (the
# GROUP BY streams, no sort).
Index("ix_task_outcome", task.c.connection, task.c.cadence, task.c.step, task.c.status,
      task.c.completed, task.c.cancel_reason, task.c.day0, task.c.due_date,
      task.c.completed_at)

activity = Table(
    "activity", metadata,
    Column("connection", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # connectors.models.ActivityKind
    Column("at", UTCDateTime(), nullable=False),
    Column("deal_id", String(64)),
    Column("account_id", String(64)),
    Column("contact_ids", JSON, nullable=False),
    Column("owner_id", String(64)),
    Column("task_key", String(64)),
    Column("completed", Boolean, nullable=False, default=False),
    Column("completed_at", UTCDateTime()),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("modified_at", UTCDateTime()),
)

activity_link = Table(
    "activity_link", metadata,
    Column("connection", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
    Column("activity_id", String(64), primary_key=True),
)

deal_contact = Table(  # a tracked deal's stakeholder contacts (links contact activities)
    "deal_contact", metadata,
    Column("connection", String(64), primary_key=True),
    Column("contact_id", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
)

skip_decision = Table(
    "skip_decision", metadata,
    Column("key", String(64), primary_key=True),  # the task key it was not written under
    Column("connection", String(64), nullable=False),
    Column("deal_id", String(64), nullable=False),
    Column("step", String(64), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("contact_id", String(64)),
    Column("due_date", Date),
    Column("activity_kind", String(16), nullable=False),
    Column("activity_id", String(64), nullable=False),
    Column("activity_at", UTCDateTime(), nullable=False),
    Column("decided_at", UTCDateTime(), nullable=False),
)
Index("ix_skip_decision_deal", skip_decision.c.connection, skip_decision.c.deal_id)

skip_outcome = Table(  # every step a plan skipped, with its reason (the outcome report)
    "skip_outcome", metadata,
    Column("connection", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("occurrence", Integer, primary_key=True),
    Column("contact", String(64), primary_key=True),  # "" when the step has no contact
    Column("cadence", String(64), nullable=False),
    Column("reason", String(64), nullable=False),  # grace | activity | pause | cap | other
    Column("detail", Text),  # the planner's own words
    Column("due_date", Date),
    Column("decided_at", UTCDateTime(), nullable=False),
)

event = Table(
    "event", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("connection", String(64), nullable=False),
    Column("deal_id", String(64)),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("data", JSON),
)
Index("ix_event_kind", event.c.connection, event.c.kind, event.c.at)

# A connection's setup results (issue 15): what `ensure_setup` learned, kept until
# `expires_at` so that a restart does not pay the setup calls again (worker/sync/setup_cache.py).
setup_cache = Table(
    "setup_cache", metadata,
    Column("connection", String(64), primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("stored_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# The outcome report's rollups (issue 14, migration 0007): counts kept exact by triggers on
# task and enrollment (worker/ledger/rollups.py), so `winback report` reads thousands of rows
# instead of millions. Key columns are never NULL (sentinels: '' and 0001-01-01).
task_rollup = Table(
    "task_rollup", metadata,
    Column("connection", String(64), primary_key=True),
    Column("cadence", String(80), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("completed", Boolean, primary_key=True),
    Column("cancel_reason", String(32), primary_key=True),
    Column("day0", Date, primary_key=True),
    Column("due_date", Date, primary_key=True),
    Column("done", Integer, primary_key=True),  # 0 open, 1 on time, 2 late, 3 time unknown
    Column("n", BigInteger, nullable=False),
)
enrollment_rollup = Table(
    "enrollment_rollup", metadata,
    Column("connection", String(64), primary_key=True),
    Column("cadence", String(64), primary_key=True),
    Column("loss_reason", String(255), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("stop_reason", String(32), primary_key=True),
    Column("day0", Date, primary_key=True),
    Column("reborn_within", Integer, primary_key=True),  # 0 not reborn, 90/180/365, 9999
    Column("won", Boolean, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("amount", Float, nullable=False),
    Column("won_amount", Float, nullable=False),
)
segment_rollup = Table(  # win-back by cadence, loss reason, competitor and owner, per loss day
    "segment_rollup", metadata,
    Column("connection", String(64), primary_key=True),
    Column("dimension", String(16), primary_key=True),
    Column("value", String(255), primary_key=True),
    Column("day0", Date, primary_key=True),
    Column("n", BigInteger, nullable=False),
    Column("won", BigInteger, nullable=False),
    Column("won_amount", Float, nullable=False),
)
# A row here while a page of new enrollments is counted into the rollups set-wise (SQLite;
# migration 0009, worker/ledger/rollups.py `deferred`); empty otherwise.
rollup_deferral = Table(
    "rollup_deferral", metadata,
    Column("deferred", Integer, nullable=False),
)
