"""Plan fingerprints: enrollment.owner_input, the rules index, and the plan_input table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("owner_input", sa.Text(), nullable=True))
    op.create_index("ix_enrollment_rules", "enrollment",
                    ["connection", "status", "cadence", "rule_version", "owner_input"])
    op.create_table(
        "plan_input",
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_plan_input")),
    )


def downgrade() -> None:
    op.drop_table("plan_input")
    op.drop_index("ix_enrollment_rules", table_name="enrollment")
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("owner_input")
