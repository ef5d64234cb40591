"""PostgreSQL only: a ``tenant`` column, tenant-first keys and a forced row-level security policy on every
tenant-owned table (see ``regelwerk.tenancy.rls``). SQLite keeps one file per tenant and is left alone.

Revision ID: 0002_row_level_security
Revises: 0001_control_plane
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op
from regelwerk.tenancy.rls import apply_row_level_security

revision = '0002_row_level_security'
down_revision = '0001_control_plane'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Protect every tenant-owned table that exists now (``regelwerk tenants upgrade`` repeats it for new ones)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        apply_row_level_security(bind)


def downgrade() -> None:
    """Not supported: removing isolation is not an automatic step."""
    raise NotImplementedError("row-level security is not removed automatically")
