"""Take-over and restarts (issue 15): whether a lease was taken with the PostgreSQL advisory
lock (`lease_locked`: only such a lease may be taken over before it expires, once its holder's
session is gone), and the setup cache (a connection's setup results, kept until they expire).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connection_state") as batch:
        batch.add_column(sa.Column("lease_locked", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("connection_state") as batch:
        batch.alter_column("lease_locked", server_default=None)
    op.create_table(
        "setup_cache",
        sa.Column("connection", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connection", name=op.f("pk_setup_cache")),
    )


def downgrade() -> None:
    op.drop_table("setup_cache")
    with op.batch_alter_table("connection_state") as batch:
        batch.drop_column("lease_locked")
