"""The first ledger schema: connection_state, enrollment, task, event.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('connection_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('next_due', sa.DateTime(timezone=True), nullable=True),
    sa.Column('watermark', sa.DateTime(timezone=True), nullable=True),
    sa.Column('backfill_done', sa.Boolean(), nullable=False),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_tick_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_tick_result', sa.String(length=32), nullable=True),
    sa.Column('last_tick_seconds', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('api_used', sa.Integer(), nullable=True),
    sa.Column('api_limit', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_connection_state'))
    )
    op.create_table('enrollment',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection', sa.String(length=64), nullable=False),
    sa.Column('deal_id', sa.String(length=64), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('cadence', sa.String(length=64), nullable=True),
    sa.Column('rule_version', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('account_id', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.String(length=64), nullable=True),
    sa.Column('loss_reason', sa.String(length=255), nullable=True),
    sa.Column('amount', sa.Float(), nullable=True),
    sa.Column('day0', sa.Date(), nullable=True),
    sa.Column('deal_json', sa.JSON(), nullable=False),
    sa.Column('deal_modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reborn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reborn_deal_id', sa.String(length=64), nullable=True),
    sa.Column('won_back_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('won_back_amount', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment')),
    sa.UniqueConstraint('connection', 'deal_id', name='uq_enrollment_connection_deal')
    )
    op.create_index('ix_enrollment_account', 'enrollment', ['connection', 'account_id', 'status'], unique=False)
    op.create_index('ix_enrollment_reborn_deal', 'enrollment', ['connection', 'reborn_deal_id'], unique=False)
    op.create_table('event',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('connection', sa.String(length=64), nullable=False),
    sa.Column('deal_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    op.create_index('ix_event_kind', 'event', ['connection', 'kind', 'at'], unique=False)
    op.create_table('task',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('connection', sa.String(length=64), nullable=False),
    sa.Column('deal_id', sa.String(length=64), nullable=False),
    sa.Column('cadence', sa.String(length=80), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('occurrence', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.String(length=64), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('remind_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('create_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cancel_reason', sa.String(length=32), nullable=True),
    sa.Column('subject', sa.Text(), nullable=True),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('crm_id', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_epoch', sa.BigInteger(), nullable=True),
    sa.Column('sending_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('close_requested', sa.Boolean(), nullable=False),
    sa.Column('completed', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('written_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task')),
    sa.UniqueConstraint('key', name=op.f('uq_task_key'))
    )
    op.create_index('ix_task_deal', 'task', ['connection', 'deal_id', 'status'], unique=False)
    op.create_index('ix_task_queue', 'task', ['connection', 'status', 'create_after'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_task_queue', table_name='task')
    op.drop_index('ix_task_deal', table_name='task')
    op.drop_table('task')
    op.drop_index('ix_event_kind', table_name='event')
    op.drop_table('event')
    op.drop_index('ix_enrollment_reborn_deal', table_name='enrollment')
    op.drop_index('ix_enrollment_account', table_name='enrollment')
    op.drop_table('enrollment')
    op.drop_table('connection_state')
