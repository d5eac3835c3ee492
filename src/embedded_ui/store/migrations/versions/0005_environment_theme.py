"""environment theme

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 15:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environment_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("theme", sa.JSON(), server_default="{}", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("environment_settings", schema=None) as batch_op:
        batch_op.drop_column("theme")
