"""The control plane's tables: tenants, API keys, deployed bundle versions, the workers' tick queue.

Revision ID: 0001_control_plane
Revises:
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
from regelwerk.tenancy.tables import control_metadata

revision = '0001_control_plane'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables."""
    control_metadata.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    """Drop them."""
    control_metadata.drop_all(op.get_bind(), checkfirst=True)
