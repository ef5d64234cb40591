"""``facts`` on ``rw_vacancies`` and ``rw_candidates``: the customer's declared vacancy and candidate facts.

A RecruitmentWorkflow move may have a condition (``when``) over the vacancy's and the candidate's facts
(``vacancy.budget_approved``, ``candidate.reference_check``): the attributes a ``Facts`` document named
``vacancy`` or ``candidate`` declares, which the host sets (``Recruitment.set_vacancy_facts`` /
``set_candidate_facts``). They are kept here as one JSON object per row; NULL (every row before) is none.

Revision ID: recruitment_0002
Revises: recruitment_0001
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'recruitment_0002'
down_revision = 'recruitment_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two columns (nullable: existing rows have no facts); a table that has one already keeps it (tables
    the store's setup created from the current metadata, adopted by recruitment_0001)."""
    inspector = sa.inspect(op.get_bind())
    for table in ('rw_vacancies', 'rw_candidates'):
        if 'facts' not in {column['name'] for column in inspector.get_columns(table)}:
            op.add_column(table, sa.Column('facts', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table('rw_candidates') as batch:
        batch.drop_column('facts')
    with op.batch_alter_table('rw_vacancies') as batch:
        batch.drop_column('facts')
