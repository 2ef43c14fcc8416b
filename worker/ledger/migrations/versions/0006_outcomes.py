"""Outcomes (issue 14): when a written task was completed in the CRM, the deal's competitor on
its enrollment (the report groups by it), every step a plan skipped with its reason (grace,
activity, pause, cap...), and when the cheap task status read last ran.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("competitor", sa.String(length=255), nullable=True))
    with op.batch_alter_table("connection_state") as batch:
        batch.add_column(sa.Column("status_read_at", sa.DateTime(timezone=True),
                                   nullable=True))
    enrollment = sa.table("enrollment", sa.column("competitor", sa.String()),
                          sa.column("deal_json", sa.JSON()))
    op.execute(enrollment.update().values(
        competitor=sa.func.substr(enrollment.c.deal_json["competitor"].as_string(), 1, 255)))
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
    with op.batch_alter_table("connection_state") as batch:
        batch.drop_column("status_read_at")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("competitor")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("completed_at")
