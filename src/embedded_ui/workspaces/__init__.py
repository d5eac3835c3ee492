"""Workspaces, their environments and API keys."""

from __future__ import annotations

from embedded_ui.workspaces.service import (
    ApiKeyPrincipal,
    IssuedKey,
    WorkspaceService,
    authenticate_key,
    describe_key,
    known_key,
)

__all__ = [
    "ApiKeyPrincipal",
    "IssuedKey",
    "WorkspaceService",
    "authenticate_key",
    "describe_key",
    "known_key",
]
