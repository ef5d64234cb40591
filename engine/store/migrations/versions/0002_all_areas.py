"""Every other core area's tables: permissions (relations, invitations), scheduling (items, employees),
outbox, simulation. (The packs' tables live in the packs' own Alembic branches, e.g. the recruitment pack's
``plugins/recruitment/migrations``; databases created before that keep those tables, which the pack's first
revision adopts.)

Generated with Alembic's autogenerate from ``regelwerk.store.tables.all_tables()`` and checked by
tests/test_migrations.py (which compares the upgraded database with the metadata on SQLite and PostgreSQL).

Revision ID: 0002_all_areas
Revises: 0001_workflow
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_all_areas'
down_revision = '0001_workflow'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables and their indexes."""
    op.create_table('rw_employees',
    sa.Column('id', sa.String(length=120), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=True),
    sa.Column('hire_date', sa.Date(), nullable=True),
    sa.Column('leaving_date', sa.Date(), nullable=True),
    sa.Column('function', sa.String(length=200), nullable=True),
    sa.Column('department', sa.String(length=200), nullable=True),
    sa.Column('manager', sa.String(length=120), nullable=True),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('plan_version', sa.String(length=64), nullable=True),
    sa.Column('next_due', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_employees'))
    )
    op.create_table('rw_invitations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=100), nullable=False),
    sa.Column('account', sa.String(length=200), nullable=False),
    sa.Column('invited_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('superseded_by', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_rw_invitations_token_hash'))
    )
    with op.batch_alter_table('rw_invitations', schema=None) as batch_op:
        batch_op.create_index('ix_rw_invitations_email', ['email'], unique=False)

    op.create_table('rw_outbox',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('template', sa.String(length=200), server_default='', nullable=False),
    sa.Column('subject_ref', sa.String(length=200), nullable=True),
    sa.Column('instance_id', sa.String(length=64), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_outbox'))
    )
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_rw_outbox_status_next', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_rw_outbox_subject_ref', ['subject_ref'], unique=False)

    op.create_table('rw_relations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('object', sa.String(length=200), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=True),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_by', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_relations'))
    )
    with op.batch_alter_table('rw_relations', schema=None) as batch_op:
        batch_op.create_index('ix_rw_relations_kind_object', ['kind', 'object'], unique=False)
        batch_op.create_index('ix_rw_relations_kind_subject', ['kind', 'subject'], unique=False)

    op.create_table('rw_scheduled_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_key', sa.String(length=400), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_scheduled_events'))
    )
    with op.batch_alter_table('rw_scheduled_events', schema=None) as batch_op:
        batch_op.create_index('ix_rw_scheduled_events_item_key', ['item_key'], unique=False)

    op.create_table('rw_scheduled_items',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('item_type', sa.String(length=60), nullable=False),
    sa.Column('subject', sa.String(length=120), nullable=False),
    sa.Column('period', sa.String(length=40), nullable=False),
    sa.Column('parent_key', sa.String(length=400), nullable=True),
    sa.Column('series', sa.String(length=400), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_mode', sa.String(length=20), nullable=False),
    sa.Column('catch_up', sa.String(length=10), nullable=False),
    sa.Column('grace_seconds', sa.Integer(), nullable=False),
    sa.Column('workflow', sa.String(length=200), nullable=True),
    sa.Column('instance_id', sa.String(length=200), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_scheduled_items')),
    sa.UniqueConstraint('key', name=op.f('uq_rw_scheduled_items_key'))
    )
    with op.batch_alter_table('rw_scheduled_items', schema=None) as batch_op:
        batch_op.create_index('ix_rw_scheduled_items_source_period', ['source', 'period', 'item_type'], unique=False)
        batch_op.create_index('ix_rw_scheduled_items_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_rw_scheduled_items_subject', ['subject'], unique=False)

    op.create_table('rw_simulation_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('simulation', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_simulation_events')),
    sa.UniqueConstraint('simulation', 'key', name=op.f('uq_rw_simulation_events_simulation_key'))
    )
    with op.batch_alter_table('rw_simulation_events', schema=None) as batch_op:
        batch_op.create_index('ix_rw_simulation_events_simulation_status', ['simulation', 'status'], unique=False)

    op.create_table('rw_simulations',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('bundle_version', sa.String(length=64), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=True),
    sa.Column('data_imported', sa.Boolean(), nullable=False),
    sa.Column('totals', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rw_simulations'))
    )
def downgrade() -> None:
    """Drop them again."""
    op.drop_table('rw_simulations')
    with op.batch_alter_table('rw_simulation_events', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_simulation_events_simulation_status')

    op.drop_table('rw_simulation_events')
    with op.batch_alter_table('rw_scheduled_items', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_scheduled_items_subject')
        batch_op.drop_index('ix_rw_scheduled_items_status_due')
        batch_op.drop_index('ix_rw_scheduled_items_source_period')

    op.drop_table('rw_scheduled_items')
    with op.batch_alter_table('rw_scheduled_events', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_scheduled_events_item_key')

    op.drop_table('rw_scheduled_events')
    with op.batch_alter_table('rw_relations', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_relations_kind_subject')
        batch_op.drop_index('ix_rw_relations_kind_object')

    op.drop_table('rw_relations')
    with op.batch_alter_table('rw_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_outbox_subject_ref')
        batch_op.drop_index('ix_rw_outbox_status_next')

    op.drop_table('rw_outbox')
    with op.batch_alter_table('rw_invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_rw_invitations_email')

    op.drop_table('rw_invitations')
    op.drop_table('rw_employees')
