"""page links: install_link.integration_id is optional (no integration = a link to the page)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("install_link", schema=None) as batch_op:
        batch_op.alter_column("integration_id", existing_type=sa.String(length=24), nullable=True)


def downgrade() -> None:
    # Page links have no integration to keep: they are short-lived and single-use anyway.
    op.execute("DELETE FROM install_link WHERE integration_id IS NULL")
    with op.batch_alter_table("install_link", schema=None) as batch_op:
        batch_op.alter_column("integration_id", existing_type=sa.String(length=24), nullable=False)
