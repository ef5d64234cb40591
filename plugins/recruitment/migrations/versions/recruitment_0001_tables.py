"""The recruitment pack's tables: vacancies, candidates, questionnaires, retention log, vacancy audit.

The first revision of the pack's own Alembic branch (``recruitment``), applied by ``regelwerk db upgrade``
with the core's. Databases upgraded before the packs had branches of their own already hold these tables
(the core's revision 0002 created them then): ``if_not_exists`` adopts them as they are.

Revision ID: recruitment_0001
Revises: (branch base)
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'recruitment_0001'
down_revision = None
branch_labels = ('recruitment',)
depends_on = None


def upgrade() -> None:
    """Create the tables and their indexes (adopting existing ones)."""
    op.create_table('rw_vacancies',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('function', sa.String(length=200), nullable=False),
    sa.Column('department', sa.String(length=200), nullable=False),
    sa.Column('manager', sa.String(length=200), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('entity', sa.String(length=200), nullable=True),
    sa.Column('workflow', sa.String(length=200), nullable=False),
    sa.Column('templates', sa.JSON(), nullable=False),
    sa.Column('team', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('opened_by', sa.String(length=200), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_vacancies')),
    if_not_exists=True,
    )
    op.create_table('rw_candidates',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('vacancy_id', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.String(length=64), nullable=False),
    sa.Column('first_name', sa.String(length=200), nullable=False),
    sa.Column('last_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('phone', sa.String(length=64), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=200), nullable=False),
    sa.Column('status_group', sa.String(length=32), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('status_since', sa.DateTime(), nullable=False),
    sa.Column('applied_at', sa.DateTime(), nullable=False),
    sa.Column('consent', sa.Boolean(), nullable=False),
    sa.Column('consent_at', sa.DateTime(), nullable=True),
    sa.Column('renewal_requested_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_candidates')),
    if_not_exists=True,
    )
    op.create_index('ix_rw_candidates_instance_id', 'rw_candidates', ['instance_id'], unique=False, if_not_exists=True)
    op.create_index('ix_rw_candidates_status_group_status_since', 'rw_candidates', ['status_group', 'status_since'],
                    unique=False, if_not_exists=True)
    op.create_index('ix_rw_candidates_vacancy_id', 'rw_candidates', ['vacancy_id'], unique=False, if_not_exists=True)
    op.create_table('rw_questionnaires',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('candidate_id', sa.String(length=64), nullable=False),
    sa.Column('vacancy_id', sa.String(length=64), nullable=False),
    sa.Column('competencies', sa.JSON(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_questionnaires')),
    if_not_exists=True,
    )
    op.create_index('ix_rw_questionnaires_candidate_id', 'rw_questionnaires', ['candidate_id'], unique=False,
                    if_not_exists=True)
    op.create_table('rw_retention_log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('policy', sa.String(length=200), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=200), nullable=False),
    sa.Column('status_group', sa.String(length=32), nullable=False),
    sa.Column('vacancy_id', sa.String(length=64), nullable=True),
    sa.Column('applied_month', sa.String(length=7), nullable=False),
    sa.Column('kept_days', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_retention_log')),
    if_not_exists=True,
    )
    op.create_table('rw_vacancy_audit',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('vacancy_id', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rw_vacancy_audit')),
    if_not_exists=True,
    )




def downgrade() -> None:
    """Drop them again."""
    op.drop_table('rw_vacancy_audit')
    op.drop_table('rw_retention_log')
    op.drop_table('rw_questionnaires')
    op.drop_table('rw_candidates')
    op.drop_table('rw_vacancies')
