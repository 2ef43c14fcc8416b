"""Activity (issue 13): the activity table and its links to tracked deals, the activity
watermark, skip decisions, tracked deals' contacts, and the enrollment's next time-driven re-plan and waiting count.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connection_state") as batch:
        batch.add_column(sa.Column("activity_watermark", sa.DateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("replan_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("waiting", sa.Integer(), nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("enrollment") as batch:
        batch.alter_column("waiting", server_default=None)
    op.create_index("ix_enrollment_replan", "enrollment", ["connection", "replan_at"])
    op.create_table(
        "activity",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("contact_ids", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("task_key", sa.String(length=64), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("connection", "id", name=op.f("pk_activity")),
    )
    op.create_table(
        "activity_link",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("activity_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("connection", "deal_id", "activity_id",
                                name=op.f("pk_activity_link")),
    )
    op.create_table(
        "deal_contact",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("connection", "contact_id", "deal_id",
                                name=op.f("pk_deal_contact")),
    )
    op.create_table(
        "skip_decision",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("activity_kind", sa.String(length=16), nullable=False),
        sa.Column("activity_id", sa.String(length=64), nullable=False),
        sa.Column("activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_skip_decision")),
    )
    op.create_index("ix_skip_decision_deal", "skip_decision", ["connection", "deal_id"])


def downgrade() -> None:
    op.drop_index("ix_skip_decision_deal", table_name="skip_decision")
    op.drop_table("skip_decision")
    op.drop_table("deal_contact")
    op.drop_table("activity_link")
    op.drop_table("activity")
    op.drop_index("ix_enrollment_replan", table_name="enrollment")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("waiting")
        batch.drop_column("replan_at")
    with op.batch_alter_table("connection_state") as batch:
        batch.drop_column("activity_watermark")
