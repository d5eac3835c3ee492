"""``/destinations``: named databases that ``database`` blocks insert into, per environment.
The URL is write-only in full: sealed at rest and shown with its password masked."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.api.auth import Principal
from embedded_ui.api.schemas import MessageOut, error_responses
from embedded_ui.engine.destinations import DestinationService, describe_destination


class DestinationIn(msgspec.Struct, forbid_unknown_fields=True):
    url: str


class DestinationOut(msgspec.Struct, rename="camel"):
    name: str
    url: str
    created_at: str
    updated_at: str


class DestinationListOut(msgspec.Struct):
    data: list[DestinationOut]


def _out(row: Any, url: str) -> DestinationOut:
    return msgspec.convert(describe_destination(row, url), DestinationOut)


def provide_destinations(
    db_session: NamedDependency[AsyncSession], request: Request[Principal, Any, State]
) -> DestinationService:
    state = request.app.state
    return DestinationService(
        db_session,
        request.user.scope,
        state.vault,
        actor=request.user.actor,
        service_database_url=state.settings.database_url,
        settings=state.settings,
    )


Destinations = NamedDependency[DestinationService]


class DestinationsController(Controller):
    path = "/destinations"
    tags = ["Destinations"]
    dependencies = {"destination_service": Provide(provide_destinations, sync_to_thread=False)}

    @get("/", summary="List the environment's destinations", responses=error_responses())
    async def list_destinations(self, destination_service: Destinations) -> DestinationListOut:
        rows = await destination_service.list()
        return DestinationListOut([_out(row, url) for row, url in rows])

    @put(
        "/{name:str}",
        summary="Set a destination",
        description="`{url}`: a SQLAlchemy URL, `postgresql://user:password@host:5432/db` or "
        "`sqlite:////path/to/file.db` (the async drivers asyncpg and aiosqlite are used). "
        "Replaces any earlier URL of that name. Encrypted at rest; shown with the password "
        "masked.",
        responses=error_responses(400, 413),
    )
    async def set_destination(
        self, name: FromPath[str], data: JSONBody[DestinationIn], destination_service: Destinations
    ) -> DestinationOut:
        row, url = await destination_service.set(name, data.url)
        return _out(row, url)

    @delete(
        "/{name:str}",
        summary="Delete a destination",
        responses=error_responses(404),
        status_code=200,
    )
    async def delete_destination(
        self, name: FromPath[str], destination_service: Destinations
    ) -> MessageOut:
        await destination_service.delete(name)
        return MessageOut("Destination deleted.")
