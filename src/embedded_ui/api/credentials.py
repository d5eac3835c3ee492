"""``/users/{userId}/credentials``: a user's connected accounts. Never returns a secret."""

from __future__ import annotations

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from embedded_ui.api.deps import SERVICES, Credentials, Users
from embedded_ui.api.schemas import (
    CredentialIn,
    CredentialListOut,
    CredentialOut,
    MessageOut,
    error_responses,
)
from embedded_ui.credentials import describe_credential
from embedded_ui.store import Credential


def _out(credential: Credential) -> CredentialOut:
    # describe_credential's keys are the wire (camelCase) names, hence convert, not **kwargs.
    return msgspec.convert(describe_credential(credential), CredentialOut)


class CredentialsController(Controller):
    path = "/users/{user_id:str}/credentials"
    tags = ["Credentials"]
    dependencies = SERVICES

    @get("/", summary="List a user's credentials", responses=error_responses(404))
    async def list_credentials(
        self, user_id: FromPath[str], user_service: Users, credential_service: Credentials
    ) -> CredentialListOut:
        user = await user_service.get(user_id)
        rows = await credential_service.list_for(user)
        return CredentialListOut([_out(c) for c in rows])

    @post(
        "/",
        summary="Create a credential",
        description="API-key, basic or custom credentials: `{app, type, data: {field: value}}`. "
        "Each field is checked against the app's pattern; the secret is encrypted at rest "
        "and never returned.",
        responses=error_responses(400, 404, 413),
    )
    async def create_credential(
        self,
        user_id: FromPath[str],
        data: JSONBody[CredentialIn],
        user_service: Users,
        credential_service: Credentials,
    ) -> CredentialOut:
        user = await user_service.get(user_id)
        credential = await credential_service.create(
            user, data.app, data.type, data.data, data.name
        )
        return _out(credential)

    @delete(
        "/{credential_id:str}",
        summary="Delete a credential",
        responses=error_responses(404),
        status_code=200,
    )
    async def delete_credential(
        self,
        user_id: FromPath[str],
        credential_id: FromPath[str],
        user_service: Users,
        credential_service: Credentials,
    ) -> MessageOut:
        user = await user_service.get(user_id)
        await credential_service.delete(user, credential_id)
        return MessageOut("Credential deleted.")
