"""Join the two revisions that both followed 0003: the organisation/accounts tables and the simulation leases.

Revision ID: 0005_merge_organisation_leases
Revises: 0004_organisation, 0004_simulation_leases
Create Date: 2026-12-04
"""
from __future__ import annotations

revision = '0005_merge_organisation_leases'
down_revision = ('0004_organisation', '0004_simulation_leases')
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to do: both parents are applied."""


def downgrade() -> None:
    """Nothing to do."""
