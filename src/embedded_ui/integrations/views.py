"""What users and the ISV see of integrations and workflows (Alloy's documented shapes)."""

from __future__ import annotations

import msgspec


class BlockView(msgspec.Struct):
    id: str
    name: str
    type: str
    icon: str


class WorkflowView(msgspec.Struct, rename="camel"):
    workflow_id: str
    name: str
    installed: bool
    version: int
    installed_version: int | None
    active: bool
    blocks: list[BlockView]


class UserWorkflowView(WorkflowView, rename="camel"):
    integration_id: str = ""
    app: str = ""


class IntegrationView(msgspec.Struct, rename="camel"):
    integration_id: str
    app: str
    name: str
    description: str
    categories: list[str]
    icon: str
    installed: bool
    # Last, so the listing can splice encoded workflows in (InstallationService.integrations_json).
    workflows: list[WorkflowView]
