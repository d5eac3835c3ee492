"""Request and response bodies of the ISV API, in Alloy's camelCase."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from embedded_ui.store import User, iso_ms
from embedded_ui.users import UserRecord


class ErrorBody(msgspec.Struct):
    """Every error: ``message`` says what is wrong, ``code`` is a stable snake_case name."""

    message: str
    code: str


class UserOut(msgspec.Struct, rename="camel"):
    user_id: str
    username: str
    full_name: str | None
    created_at: str

    @classmethod
    def of(cls, user: User | UserRecord) -> UserOut:
        return cls(user.id, user.username, user.full_name, iso_ms(user.created_at))


class CreateUserIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    username: str
    full_name: str | None = None


class UpdateUserIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    username: str | msgspec.UnsetType = msgspec.UNSET
    full_name: str | msgspec.UnsetType | None = msgspec.UNSET


class BatchUsersIn(msgspec.Struct, forbid_unknown_fields=True):
    users: Annotated[
        list[Any],
        msgspec.Meta(description="Up to 1,000 objects of the shape of `POST /users`."),
    ]


class BatchItemOut(msgspec.Struct, omit_defaults=True):
    index: int
    success: bool
    user: UserOut | None = None
    error: ErrorBody | None = None


class BatchUsersOut(msgspec.Struct):
    data: list[BatchItemOut]
    created: int
    failed: int


class PageMeta(msgspec.Struct, rename="camel"):
    page: int
    limit: int
    total: int
    has_more: bool


class UserListOut(msgspec.Struct):
    data: list[UserOut]
    meta: PageMeta


class DeletedOut(msgspec.Struct, rename="camel"):
    message: str
    user_id: str


class TokenOut(msgspec.Struct, rename="camel"):
    token: str
    expires_at: str


class SessionOut(msgspec.Struct, rename="camel"):
    user_id: str
    workspace_id: str
    environment: str


_ERROR_TEXT = {
    400: "The request is malformed; `message` names the field.",
    401: "No API key, or an unknown, revoked or malformed one.",
    404: "Not found in this workspace environment.",
    409: "Conflicts with an existing record.",
    413: "The body is larger than the configured limit.",
    422: "Well formed but not valid; `message` names the field.",
    429: "Rate limited; see the Retry-After header.",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_ERROR_TEXT[status])
        for status in (*statuses, 401, 429)
    }


class ListOut(msgspec.Struct):
    """A plain ``{data: [...]}`` list, as Alloy answers."""

    data: list[Any]


class UserWorkflowIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    workflow_id: str
    user_id: str | None = None


class ActiveOut(msgspec.Struct, rename="camel"):
    message: str
    workflow_id: str
    active: bool


class UpgradeOut(msgspec.Struct, rename="camel"):
    message: str
    workflow_id: str
    previous_version: int
    installed_version: int


class CountOut(msgspec.Struct):
    message: str
    count: int


class MessageOut(msgspec.Struct):
    message: str


class VersionOut(msgspec.Struct, rename="camel"):
    version_id: str
    version: int | None
    status: str
    name: str
    created_at: str
    released_at: str | None
    configurable_fields: list[dict[str, Any]]


class WorkflowUserOut(msgspec.Struct, rename="camel"):
    user_id: str
    username: str
    installed_version: int
    active: bool
    installed_at: str


class WorkflowUsersOut(msgspec.Struct):
    data: list[WorkflowUserOut]
    meta: PageMeta


class StartInstallationIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    user_id: str
    integration_id: str
    credential_ids: list[str] = msgspec.field(default_factory=list)
    workflow_ids: list[str] | None = None


class StartInstallationOut(msgspec.Struct, rename="camel"):
    installation_id: str
    data: list[dict[str, Any]]


class FieldValueIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    value: Any = None


class BlockValuesIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    workflow_id: str
    block_id: str
    fields: list[FieldValueIn]


class CompleteInstallationIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    installation_id: str
    data: list[BlockValuesIn] = msgspec.field(default_factory=list)


class CompleteInstallationOut(msgspec.Struct, rename="camel"):
    message: str
    user_id: str
    workflow_ids: list[str]


class CredentialIn(msgspec.Struct, forbid_unknown_fields=True):
    app: str
    type: str
    data: dict[str, Any]
    name: str | None = None


class CredentialOut(msgspec.Struct, rename="camel"):
    credential_id: str
    app: str
    type: str
    name: str
    status: str
    details: dict[str, Any]
    created_at: str


class CredentialListOut(msgspec.Struct):
    data: list[CredentialOut]
