"""The outcome report's rollups (issue 14): task_rollup, enrollment_rollup and segment_rollup,
and a reborn deal's last touch on its enrollment (last_touch_step, last_touch_at), kept exact
by triggers on task and enrollment (worker/ledger/rollups.py), backfilled here from the
existing rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from worker.ledger import rollups

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("last_touch_step", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("last_touch_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "task_rollup",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("cadence", sa.String(length=80), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("cancel_reason", sa.String(length=32), nullable=False),
        sa.Column("day0", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "cadence", "step", "status", "completed",
                                "cancel_reason", "day0", "due_date", "done",
                                name=op.f("pk_task_rollup")),
    )
    op.create_table(
        "enrollment_rollup",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("cadence", sa.String(length=64), nullable=False),
        sa.Column("loss_reason", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sa.String(length=32), nullable=False),
        sa.Column("day0", sa.Date(), nullable=False),
        sa.Column("reborn_within", sa.Integer(), nullable=False),
        sa.Column("won", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("won_amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "cadence", "loss_reason", "status",
                                "stop_reason", "day0", "reborn_within", "won",
                                name=op.f("pk_enrollment_rollup")),
    )
    op.create_table(
        "segment_rollup",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("day0", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("won", sa.BigInteger(), nullable=False),
        sa.Column("won_amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "dimension", "value", "day0",
                                name=op.f("pk_segment_rollup")),
    )
    conn = op.get_bind()
    rollups.rebuild(conn)
    rollups.install(conn, deferrable=False)  # (0009 makes them deferrable)


def downgrade() -> None:
    rollups.uninstall(op.get_bind())
    op.drop_table("segment_rollup")
    op.drop_table("enrollment_rollup")
    op.drop_table("task_rollup")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("last_touch_at")
        batch.drop_column("last_touch_step")
