"""Vault key rotation: re-seal every vault-sealed column under the first configured key.

Each sealed column is listed here once, with the function its owner seals it with for the
associated data (imported from the owner, never rewritten), so a row re-sealed here opens
exactly where it opened before. Adding a sealed column elsewhere means adding it to
:data:`SEALED`; ``tests/unit/test_rotation.py`` fails until it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from embedded_ui.credentials.vault import Vault, credential_aad
from embedded_ui.engine.destinations import destination_aad
from embedded_ui.engine.endpoints import endpoint_aad
from embedded_ui.engine.subscriptions import webhook_aad
from embedded_ui.oauth.clients import oauth_client_aad
from embedded_ui.oauth.flows import flow_aad
from embedded_ui.store import Scope, utcnow
from embedded_ui.store.models import (
    Credential,
    Destination,
    Installation,
    OAuthClient,
    OAuthFlow,
    StreamEndpoint,
)


@dataclass(frozen=True)
class SealedColumn:
    """One table's sealed value: its key-id and ciphertext columns and how its owner binds
    the ciphertext to the row (``aad(workspace_id, environment, row_id)``)."""

    name: str
    model: Any
    key_id: InstrumentedAttribute[Any]
    ciphertext: InstrumentedAttribute[Any]
    aad: Callable[[str, str, str], bytes]
    touch: bool = False
    """Whether the row's ``updated_at`` moves when it is re-sealed."""


SEALED: tuple[SealedColumn, ...] = (
    SealedColumn(
        "credential",
        Credential,
        Credential.key_id,
        Credential.ciphertext,
        credential_aad,
        touch=True,
    ),
    SealedColumn(
        "oauth_client",
        OAuthClient,
        OAuthClient.key_id,
        OAuthClient.ciphertext,
        oauth_client_aad,
    ),
    SealedColumn("oauth_flow", OAuthFlow, OAuthFlow.key_id, OAuthFlow.ciphertext, flow_aad),
    SealedColumn(
        "installation_webhook",
        Installation,
        Installation.webhook_key_id,
        Installation.webhook_ciphertext,
        lambda workspace, environment, row: webhook_aad(Scope(workspace, environment), row),
    ),
    SealedColumn(
        "stream_endpoint",
        StreamEndpoint,
        StreamEndpoint.key_id,
        StreamEndpoint.ciphertext,
        lambda workspace, environment, row: endpoint_aad(Scope(workspace, environment), row),
    ),
    SealedColumn(
        "destination",
        Destination,
        Destination.key_id,
        Destination.ciphertext,
        destination_aad,
    ),
)


async def rotate_vault(session: AsyncSession, vault: Vault, batch: int = 500) -> dict[str, int]:
    """Re-seal every sealed value not under ``vault``'s first key; returns how many were
    re-sealed per table (names of :data:`SEALED`). Commits after each batch.

    Rows are walked once in id order. Each is rewritten with a conditional UPDATE that
    matches the ciphertext read, so a value a running service re-sealed meanwhile (an OAuth
    flow gaining its PKCE verifier, a refreshed token) is left as that service wrote it
    rather than overwritten with what was read before; run the command again to pick those up.
    """
    counts: dict[str, int] = {}
    for sealed in SEALED:
        counts[sealed.name] = await _rotate(session, vault, sealed, batch)
    return counts


async def _rotate(session: AsyncSession, vault: Vault, sealed: SealedColumn, batch: int) -> int:
    model = sealed.model
    rotated, after = 0, ""
    while True:
        rows = (
            await session.execute(
                select(
                    model.id,
                    model.workspace_id,
                    model.environment,
                    sealed.key_id,
                    sealed.ciphertext,
                )
                .where(
                    sealed.key_id.is_not(None),
                    sealed.key_id != vault.primary_kid,
                    model.id > after,
                )
                .order_by(model.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            return rotated
        for row_id, workspace_id, environment, key_id, blob in rows:
            aad = sealed.aad(workspace_id, environment, row_id)
            new_key_id, new_blob = vault.seal(vault.open(key_id, blob, aad), aad)
            values: dict[Any, Any] = {sealed.key_id: new_key_id, sealed.ciphertext: new_blob}
            if sealed.touch:
                values[model.updated_at] = utcnow()
            result = await session.execute(
                update(model)
                .where(model.id == row_id, sealed.key_id == key_id, sealed.ciphertext == blob)
                .values(values)
                .execution_options(synchronize_session=False)
            )
            rotated += int(getattr(result, "rowcount", 0) or 0)
        await session.commit()
        after = rows[-1][0]
