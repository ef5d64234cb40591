"""Drop ``rw_employer_products``, a table an older revision 0002 created for a pack.

That pack now keeps its record in the workflow runtime's history and audit rows; the table is dropped where
it exists. (Packs keep their tables in Alembic branches of their own.)

Revision ID: 0003_drop_employer_products
Revises: 0002_all_areas
Create Date: 2026-11-22
"""
from __future__ import annotations

from alembic import op

revision = '0003_drop_employer_products'
down_revision = '0002_all_areas'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop the table and its index where an older revision 0002 created them."""
    op.drop_index('ix_rw_employer_products_employer_catalog', table_name='rw_employer_products', if_exists=True)
    op.drop_table('rw_employer_products', if_exists=True)


def downgrade() -> None:
    """Nothing to restore: revision 0002 no longer creates the table."""
