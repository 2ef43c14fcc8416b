"""Experiment arms (issue 17): each enrollment keeps the experiment its cadence ran when the
deal was drawn and the deal's arm in it (holdout, base or a variant), so that the arm never
changes while the experiment id stays, whatever else is edited.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.add_column(sa.Column("experiment", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("arm", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrollment") as batch:
        batch.drop_column("arm")
        batch.drop_column("experiment")
