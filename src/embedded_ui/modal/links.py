"""Hosted links, single-use and expiring: install links
(``GET /users/{userId}/integrations/{integrationId}/install-url`` makes one,
``GET /install/{token}`` redeems it) and integrations-page links
(``GET /users/{userId}/integrations-page-url``, ``GET /integrations-page/{token}``). Both live in
``install_link``; a page link has no integration, and neither kind redeems the other."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui import audit
from embedded_ui.store import InstallLink, Scope, User, bind_scope, utcnow

LINK_LIFETIME = timedelta(minutes=15)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _plausible(token: str) -> bool:
    return 20 <= len(token) <= 100


class InstallLinkService:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, scope: Scope, user: User, integration_id: str | None, actor: str
    ) -> tuple[str, InstallLink]:
        """A new link's token (returned once, stored only as a hash) and its row: an install
        link for ``integration_id``, or a page link when it is None."""
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
        details = {"integration": integration_id} if integration_id else {}
        audit.record(
            self._session,
            actor=actor,
            action="install_link.create" if integration_id else "page_link.create",
            workspace_id=scope.workspace_id,
            environment=scope.environment,
            target=user.id,
            **details,
        )
        await self._session.flush()
        return token, link

    async def redeem(self, token: str, *, page: bool = False) -> InstallLink | None:
        """The link, marked used — or None when unknown, used, expired or of the other kind
        (``page``: a page link, else an install link). One conditional UPDATE decides, so two
        concurrent visits cannot both redeem it."""
        if not _plausible(token):
            return None
        now = utcnow()
        kind = (
            InstallLink.integration_id.is_(None) if page else InstallLink.integration_id.isnot(None)
        )
        result = await self._session.execute(
            update(InstallLink)
            .where(
                InstallLink.token_hash == _hash(token),
                InstallLink.used_at.is_(None),
                InstallLink.expires_at > now,
                kind,
            )
            .values(used_at=now)
            .returning(InstallLink)
            .execution_options(synchronize_session=False)
        )
        link = result.scalar_one_or_none()
        if link is not None:
            await self._session.commit()
        return link

    async def environment_of(self, token: str) -> tuple[str, str] | None:
        """The ``(workspace, environment)`` of a known link, used or not: only to frame the
        "this link has expired" page the way the live page was framed. Whoever asks holds the
        token, so nothing is revealed."""
        if not _plausible(token):
            return None
        row = (
            await self._session.execute(
                select(InstallLink.workspace_id, InstallLink.environment).where(
                    InstallLink.token_hash == _hash(token)
                )
            )
        ).first()
        return (row[0], row[1]) if row else None
