"""Integrations as code: definitions, versions, and users' installations of them."""

from __future__ import annotations

from embedded_ui.integrations.definitions import (
    DefinitionError,
    DefinitionSet,
    load_paths,
    parse_documents,
)
from embedded_ui.integrations.installations import InstallationService, ReleasedWorkflow
from embedded_ui.integrations.service import (
    ApplyResult,
    Change,
    IntegrationService,
    differing_fields,
)
from embedded_ui.integrations.views import (
    BlockView,
    IntegrationView,
    UserWorkflowView,
    WorkflowView,
)

__all__ = [
    "ApplyResult",
    "BlockView",
    "Change",
    "DefinitionError",
    "DefinitionSet",
    "InstallationService",
    "IntegrationService",
    "IntegrationView",
    "ReleasedWorkflow",
    "UserWorkflowView",
    "WorkflowView",
    "differing_fields",
    "load_paths",
    "parse_documents",
]
