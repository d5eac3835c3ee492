"""``/manage``: the ISV applies integration files and releases versions over HTTP, the same
as `embedded-ui apply` and `embedded-ui release` do from a shell."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.params import JSONBody

from embedded_ui.api.auth import Principal
from embedded_ui.api.deps import SERVICES, Integrations
from embedded_ui.api.schemas import error_responses
from embedded_ui.errors import Unprocessable
from embedded_ui.integrations import ApplyResult, Change, DefinitionError, parse_documents

MAX_FILES = 200


class SourceFile(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    content: str


class ApplyIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    files: list[SourceFile]
    dry_run: bool = False
    release: bool = False


class ReleaseIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    workflow_ids: list[str] | None = None


class ChangeOut(msgspec.Struct):
    action: str
    kind: str
    key: str
    detail: str


class ChangesOut(msgspec.Struct, rename="camel"):
    changed: bool
    dry_run: bool
    changes: list[ChangeOut]


def _changes(changes: list[Change]) -> list[ChangeOut]:
    return [ChangeOut(c.action, c.kind, c.key, c.detail) for c in changes]


class ManageController(Controller):
    path = "/manage"
    tags = ["Management"]
    dependencies = SERVICES

    @post(
        "/apply",
        summary="Apply integration definition files",
        description="`files` are YAML integration definitions. Changed workflows get a draft; "
        "`release: true` releases the drafts at once; `dryRun: true` writes nothing and "
        "reports what would change. Invalid files → 422 naming the file and the field.",
        responses={**error_responses(400, 409, 413), 422: error_responses(400)[400]},
        status_code=200,
    )
    async def apply(
        self,
        data: JSONBody[ApplyIn],
        request: Request[Principal, Any, Any],
        integration_service: Integrations,
    ) -> ChangesOut:
        if not data.files or len(data.files) > MAX_FILES:
            raise Unprocessable(f"files: expected 1 to {MAX_FILES} files.", field="files")
        try:
            definitions = parse_documents(
                ((f.name, f.content) for f in data.files), request.app.state.apps
            )
        except DefinitionError as exc:
            raise Unprocessable(str(exc)) from None
        result: ApplyResult = await integration_service.apply(
            definitions, dry_run=data.dry_run, release=data.release
        )
        return ChangesOut(
            changed=result.changed, dry_run=data.dry_run, changes=_changes(result.changes)
        )

    @post(
        "/release",
        summary="Release drafts",
        description="Releases the drafts of the given workflows (all drafts when omitted) as "
        "their next version numbers.",
        responses=error_responses(400, 404, 413),
        status_code=200,
    )
    async def release(
        self, data: JSONBody[ReleaseIn], integration_service: Integrations
    ) -> ChangesOut:
        if data.workflow_ids is None:
            changes = await integration_service.release()
        else:
            changes = await integration_service.release_workflows(data.workflow_ids)
        return ChangesOut(changed=bool(changes), dry_run=False, changes=_changes(changes))
