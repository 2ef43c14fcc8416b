"""The experiments report's read (issue 17): a partial index over the enrollments of experiments
that covers what the report counts per arm, so a ledger without experiments answers at once
and one with them reads no table row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COLUMNS = ["connection", "experiment", "cadence", "arm", "day0", "reborn_at", "won_back_at",
           "won_back_amount"]


def upgrade() -> None:
    # Partial: only the enrollments of an experiment, so a first sync without experiments
    # writes no entry in it.
    where = sa.text("experiment IS NOT NULL")
    op.create_index("ix_enrollment_experiment", "enrollment", COLUMNS, sqlite_where=where,
                    postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_enrollment_experiment", table_name="enrollment")
