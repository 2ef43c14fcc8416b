"""Outcomes (issue 14): when a written task was completed in the CRM and its enrollment's loss
day (day0: the report reads tasks without a join), the deal's competitor on its enrollment
(the report groups by it), covering indexes for the report's scans, every step a plan skipped with its reason (grace,
activity, pause, cap...), and when the cheap task status read last ran.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("day0", sa.Date(), nullable=True))
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("competitor", sa.String(length=255), nullable=True))
    with op.batch_alter_table("connection_state") as batch:
        batch.add_column(sa.Column("status_read_at", sa.DateTime(timezone=True),
                                   nullable=True))
    enrollment = sa.table("enrollment", sa.column("competitor", sa.String()),
                          sa.column("deal_json", sa.JSON()))
    enrollment_day0 = sa.table("enrollment", sa.column("connection", sa.String()),
                               sa.column("deal_id", sa.String()), sa.column("day0", sa.Date()))
    op.execute(enrollment.update().values(
        competitor=sa.func.substr(enrollment.c.deal_json["competitor"].as_string(), 1, 255)))
    task = sa.table("task", sa.column("connection", sa.String()),
                    sa.column("deal_id", sa.String()), sa.column("day0", sa.Date()))
    op.execute(task.update().values(day0=sa.select(enrollment_day0.c.day0).where(
        enrollment_day0.c.connection == task.c.connection,
        enrollment_day0.c.deal_id == task.c.deal_id).scalar_subquery()))
    op.create_index("ix_task_outcome", "task", [
        "connection", "cadence", "step", "status", "completed", "cancel_reason", "day0",
        "due_date", "completed_at"])
    op.create_index("ix_enrollment_outcome", "enrollment", [
        "connection", "cadence", "loss_reason", "competitor", "owner_id", "status",
        "stop_reason", "day0", "reborn_at", "won_back_at", "won_back_amount", "amount"])
    op.create_table(
        "skip_outcome",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("contact", sa.String(length=64), nullable=False),
        sa.Column("cadence", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", "deal_id", "step", "occurrence", "contact",
                                name=op.f("pk_skip_outcome")),
    )


def downgrade() -> None:
    op.drop_table("skip_outcome")
    op.drop_index("ix_enrollment_outcome", table_name="enrollment")
    op.drop_index("ix_task_outcome", table_name="task")
    with op.batch_alter_table("connection_state") as batch:
        batch.drop_column("status_read_at")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("competitor")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("day0")
        batch.drop_column("completed_at")
