"""environment revision

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:35:53.056170
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environment_state",
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_environment_state_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "environment", name=op.f("pk_environment_state")),
    )


def downgrade() -> None:
    op.drop_table("environment_state")
