"""``/headless``: install without the modal — start returns the fields to fill, complete
checks every value and installs, or writes nothing."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Installations, Users
from embedded_ui.api.schemas import (
    CompleteInstallationIn,
    CompleteInstallationOut,
    StartInstallationIn,
    StartInstallationOut,
    error_responses,
)


class HeadlessController(Controller):
    path = "/headless"
    tags = ["Headless installation"]
    dependencies = SERVICES

    @post(
        "/startInstallation",
        summary="Start a headless installation",
        description="Returns an `installationId` and, per block, the fields the user must "
        "fill. `credentialIds` name the user's credentials for the integration's app.",
        responses=error_responses(400, 404, 413),
        status_code=200,
    )
    async def start(
        self,
        data: JSONBody[StartInstallationIn],
        user_service: Users,
        installation_service: Installations,
    ) -> StartInstallationOut:
        user = await user_service.get(data.user_id)
        pending, groups = await installation_service.start_headless(
            user, data.integration_id, data.workflow_ids, data.credential_ids
        )
        return StartInstallationOut(installation_id=pending.id, data=groups)

    @post(
        "/completeInstallation",
        summary="Complete a headless installation",
        description="Checks every value (422 naming each bad field) and installs all the "
        "workflows, or none.",
        responses={**error_responses(400, 404, 413), 422: error_responses(400)[400]},
        status_code=200,
    )
    async def complete(
        self,
        data: JSONBody[CompleteInstallationIn],
        request: Request[Principal, Any, Any],
        installation_service: Installations,
    ) -> CompleteInstallationOut:
        user, installations = await installation_service.complete_headless(
            data.installation_id,
            [
                {
                    "workflowId": group.workflow_id,
                    "blockId": group.block_id,
                    "fields": [{"name": f.name, "value": f.value} for f in group.fields],
                }
                for group in data.data
            ],
        )
        return CompleteInstallationOut(
            message="Installation complete.",
            user_id=user.id,
            workflow_ids=[i.workflow_id for i in installations],
        )
