"""integrations workflows versions credentials installations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 11:07:36.747549
"""

from __future__ import annotations

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custom_event",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_custom_event_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_event")),
        sa.UniqueConstraint(
            "workspace_id",
            "environment",
            "name",
            name=op.f("uq_custom_event_workspace_id_environment_name"),
        ),
    )
    op.create_table(
        "integration",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("app", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_integration_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration")),
        sa.UniqueConstraint(
            "workspace_id",
            "environment",
            "key",
            name=op.f("uq_integration_workspace_id_environment_key"),
        ),
    )
    op.create_table(
        "credential",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.String(length=24), nullable=False),
        sa.Column("app", sa.String(length=60), nullable=False),
        sa.Column("auth_type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["end_user.id"],
            name=op.f("fk_credential_user_id_end_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_credential_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential")),
    )
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_credential_workspace_id_environment_user_id"),
            ["workspace_id", "environment", "user_id"],
            unique=False,
        )

    op.create_table(
        "parent_workflow",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("integration_id", sa.String(length=24), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_parent_workflow_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_parent_workflow_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parent_workflow")),
        sa.UniqueConstraint(
            "workspace_id",
            "environment",
            "key",
            name=op.f("uq_parent_workflow_workspace_id_environment_key"),
        ),
    )
    with op.batch_alter_table("parent_workflow", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_parent_workflow_integration_id"), ["integration_id"], unique=False
        )

    op.create_table(
        "pending_installation",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.String(length=24), nullable=False),
        sa.Column("integration_id", sa.String(length=24), nullable=False),
        sa.Column("workflow_ids", sa.JSON(), nullable=False),
        sa.Column("credential_ids", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column(
            "expires_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integration.id"],
            name=op.f("fk_pending_installation_integration_id_integration"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["end_user.id"],
            name=op.f("fk_pending_installation_user_id_end_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_pending_installation_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_installation")),
    )
    op.create_table(
        "workflow_version",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("workflow_id", sa.String(length=24), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column(
            "released_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["parent_workflow.id"],
            name=op.f("fk_workflow_version_workflow_id_parent_workflow"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_workflow_version_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_version")),
        sa.UniqueConstraint(
            "workflow_id", "number", name=op.f("uq_workflow_version_workflow_id_number")
        ),
    )
    with op.batch_alter_table("workflow_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workflow_version_workspace_id_environment_workflow_id"),
            ["workspace_id", "environment", "workflow_id"],
            unique=False,
        )

    op.create_table(
        "installation",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("user_id", sa.String(length=24), nullable=False),
        sa.Column("workflow_id", sa.String(length=24), nullable=False),
        sa.Column("version_id", sa.String(length=24), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("credential_ids", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column(
            "updated_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False
        ),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("workspace_id", sa.String(length=24), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["end_user.id"],
            name=op.f("fk_installation_user_id_end_user"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["workflow_version.id"],
            name=op.f("fk_installation_version_id_workflow_version"),
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["parent_workflow.id"],
            name=op.f("fk_installation_workflow_id_parent_workflow"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_installation_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
        sa.UniqueConstraint(
            "user_id", "workflow_id", name=op.f("uq_installation_user_id_workflow_id")
        ),
    )
    with op.batch_alter_table("installation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_installation_workflow_id"), ["workflow_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_installation_workspace_id_environment_user_id"),
            ["workspace_id", "environment", "user_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("installation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_installation_workspace_id_environment_user_id"))
        batch_op.drop_index(batch_op.f("ix_installation_workflow_id"))

    op.drop_table("installation")
    with op.batch_alter_table("workflow_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workflow_version_workspace_id_environment_workflow_id"))

    op.drop_table("workflow_version")
    op.drop_table("pending_installation")
    with op.batch_alter_table("parent_workflow", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parent_workflow_integration_id"))

    op.drop_table("parent_workflow")
    with op.batch_alter_table("credential", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credential_workspace_id_environment_user_id"))

    op.drop_table("credential")
    op.drop_table("integration")
    op.drop_table("custom_event")
