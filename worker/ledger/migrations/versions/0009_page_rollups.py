"""Rollups counted a page at a time (issue 16): a first sync's page of new enrollments is
counted into the outcome rollups with one grouped statement per rollup, not by a trigger per
row (worker/ledger/rollups.py `deferred`, `add_new`). The insert triggers are re-created to
stand aside while a page is counted that way: on SQLite while `rollup_deferral` holds a row
(it is empty otherwise, and then every trigger runs as before), on PostgreSQL while the
transaction-local setting winback.defer_rollups is on.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from worker.ledger import rollups

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("rollup_deferral", sa.Column("deferred", sa.Integer(), nullable=False))
    conn = op.get_bind()
    rollups.uninstall(conn)
    rollups.install(conn, deferrable=True)


def downgrade() -> None:
    conn = op.get_bind()
    rollups.uninstall(conn)
    rollups.install(conn, deferrable=False)
    op.drop_table("rollup_deferral")
