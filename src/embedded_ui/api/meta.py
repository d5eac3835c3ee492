"""Unversioned public routes: health and the user-token key set."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.datastructures import State
from litestar.response import Response
from sqlalchemy import text

from embedded_ui.security import public_jwks


@get(
    "/.well-known/jwks.json",
    summary="User-token verification keys",
    description="The public keys that verify user tokens (JWKS, Ed25519).",
    tags=["Meta"],
    cache_control=None,
)
async def jwks(state: State) -> Response[dict[str, Any]]:
    return Response(
        public_jwks(state.settings.signing_keys),
        headers={"Cache-Control": "public, max-age=300"},
    )


@get("/health", summary="Liveness and database check", tags=["Meta"])
async def health(state: State) -> dict[str, str]:
    async with state.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return {"status": "ok"}
