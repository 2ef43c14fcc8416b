"""Per-owner daily cap (issue 14): a task's planned due date (before the cap moved it) and the
last day the cap may move it to, and an index on (connection, owner, due date) for the cap's
per-owner reads.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("planned_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("latest_due", sa.Date(), nullable=True))
    op.create_index("ix_task_owner_day", "task", ["connection", "owner_id", "due_date"])


def downgrade() -> None:
    op.drop_index("ix_task_owner_day", table_name="task")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("latest_due")
        batch.drop_column("planned_due")
