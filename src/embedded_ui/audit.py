"""Append-only audit trail. Callers pass identifiers and counts, never secrets or payloads."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.store import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    workspace_id: str | None = None,
    environment: str | None = None,
    target: str | None = None,
    **details: Any,
) -> None:
    session.add(
        AuditEntry(
            workspace_id=workspace_id,
            environment=environment,
            actor=actor,
            action=action,
            target=target,
            details=details,
        )
    )
