"""Persistence: tables, engine, sessions, migrations and the tenant scope."""

from __future__ import annotations

from embedded_ui.store.db import (
    Scope,
    bind_scope,
    create_db_config,
    create_engine,
    current_revision,
    migrate,
)
from embedded_ui.store.models import (
    ENVIRONMENTS,
    ApiKey,
    AuditEntry,
    Base,
    Credential,
    CustomEvent,
    EnvironmentState,
    Installation,
    Integration,
    ParentWorkflow,
    PendingInstallation,
    TenantScoped,
    User,
    WorkflowVersion,
    Workspace,
    iso_ms,
    new_id,
    utcnow,
)

__all__ = [
    "ENVIRONMENTS",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Credential",
    "CustomEvent",
    "EnvironmentState",
    "Installation",
    "Integration",
    "ParentWorkflow",
    "PendingInstallation",
    "Scope",
    "TenantScoped",
    "User",
    "WorkflowVersion",
    "Workspace",
    "bind_scope",
    "create_db_config",
    "create_engine",
    "current_revision",
    "iso_ms",
    "migrate",
    "new_id",
    "utcnow",
]
