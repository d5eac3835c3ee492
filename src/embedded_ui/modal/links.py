"""Hosted install links: ``GET /users/{userId}/integrations/{integrationId}/install-url``
makes one; ``GET /install/{token}`` redeems it once, before it expires."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.store import InstallLink, Scope, User, bind_scope, utcnow

LINK_LIFETIME = timedelta(minutes=15)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InstallLinkService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, scope: Scope, user: User, integration_id: str, actor: str
    ) -> tuple[str, InstallLink]:
        """A new link's token (returned once, stored only as a hash) and its row."""
        bind_scope(self._session, scope)
        token = secrets.token_urlsafe(32)
        link = InstallLink(
            workspace_id=scope.workspace_id,
            environment=scope.environment,
            token_hash=_hash(token),
            user_id=user.id,
            integration_id=integration_id,
            created_at=(now := utcnow()),
            expires_at=now + LINK_LIFETIME,
        )
        self._session.add(link)
        audit.record(
            self._session,
            actor=actor,
            action="install_link.create",
            workspace_id=scope.workspace_id,
            environment=scope.environment,
            target=user.id,
            integration=integration_id,
        )
        await self._session.flush()
        return token, link

    async def redeem(self, token: str) -> InstallLink | None:
        """The link, marked used — or None when unknown, used or expired. One conditional
        UPDATE decides, so two concurrent visits cannot both redeem it."""
        if not 20 <= len(token) <= 100:
            return None
        now = utcnow()
        result = await self._session.execute(
            update(InstallLink)
            .where(
                InstallLink.token_hash == _hash(token),
                InstallLink.used_at.is_(None),
                InstallLink.expires_at > now,
            )
            .values(used_at=now)
            .returning(InstallLink)
            .execution_options(synchronize_session=False)
        )
        link = result.scalar_one_or_none()
        if link is not None:
            await self._session.commit()
        return link
