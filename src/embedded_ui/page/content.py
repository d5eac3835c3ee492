"""What the integrations page shows one user: ``GET /integrations``'s data (the same
:meth:`InstallationService.integrations_for`) plus what only the page needs — whether an
update is one click or a reinstall (and which fields are new), broken credentials, the last
run — filtered and rendered by Jinja2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from embedded_ui.errors import InvalidRequest
from embedded_ui.integrations import (
    InstallationService,
    IntegrationView,
    WorkflowView,
    differing_fields,
)
from embedded_ui.store import (
    Credential,
    Execution,
    Installation,
    User,
    WorkflowError,
    WorkflowVersion,
    utcnow,
)
from embedded_ui.templating import render

Update = Literal["none", "upgrade", "reinstall"]
MAX_FILTER = 100
RECENT_ERRORS = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The last run of one installation and its recent errors."""

    status: str
    finished_at: str
    recent_errors: int


async def last_runs(
    session: AsyncSession, user_id: str, installations: Sequence[Installation]
) -> dict[str, RunSummary]:
    """Installation id → its last finished run and the errors of the last 7 days, in two
    statements whatever the number of workflows."""
    if not installations:
        return {}
    ids = [i.id for i in installations]
    latest = (
        select(Execution.installation_id, func.max(Execution.created_at).label("at"))
        .where(
            Execution.user_id == user_id,
            Execution.installation_id.in_(ids),
            Execution.status.in_(("succeeded", "failed")),
        )
        .group_by(Execution.installation_id)
        .subquery()
    )
    finished = await session.execute(
        select(Execution.installation_id, Execution.status, Execution.stopped_at).join(
            latest,
            (Execution.installation_id == latest.c.installation_id)
            & (Execution.created_at == latest.c.at),
        )
    )
    errors: dict[str, int] = {
        workflow_id: count
        for workflow_id, count in (
            await session.execute(
                select(WorkflowError.workflow_id, func.count(WorkflowError.id))
                .where(
                    WorkflowError.user_id == user_id,
                    WorkflowError.occurred_at >= utcnow() - RECENT_ERRORS,
                )
                .group_by(WorkflowError.workflow_id)
            )
        ).all()
    }
    workflow_of = {i.id: i.workflow_id for i in installations}
    return {
        installation_id: RunSummary(
            status=status,
            finished_at=stopped_at.strftime("%d %b %Y, %H:%M UTC") if stopped_at else "",
            recent_errors=int(errors.get(workflow_of[installation_id], 0)),
        )
        for installation_id, status, stopped_at in finished.all()
    }


@dataclass(frozen=True, slots=True)
class Filters:
    """Which integrations to show: the mount call's choice, then the user's search."""

    integrations: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    q: str = ""
    category: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Filters:
        def strings(name: str) -> tuple[str, ...]:
            value = raw.get(name) or []
            if not isinstance(value, list) or not all(
                isinstance(v, str) and 0 < len(v) <= MAX_FILTER for v in value
            ):
                raise InvalidRequest(f"{name}: expected a list of strings.", field=name)
            return tuple(value[:MAX_FILTER])

        def text(name: str) -> str:
            value = raw.get(name) or ""
            if not isinstance(value, str) or len(value) > MAX_FILTER:
                raise InvalidRequest(
                    f"{name}: expected text of at most {MAX_FILTER} characters.", field=name
                )
            return value.strip()

        return cls(strings("integrations"), strings("categories"), text("q"), text("category"))

    def offered(self, integration: IntegrationView) -> bool:
        """Chosen by the ISV (ids or app keys; categories)."""
        if self.integrations and not (
            integration.integration_id in self.integrations or integration.app in self.integrations
        ):
            return False
        return not self.categories or any(c in self.categories for c in integration.categories)

    def matches(self, integration: IntegrationView) -> bool:
        """Chosen by the user (search words, one category)."""
        if self.category and self.category not in integration.categories:
            return False
        text = search_text(integration)
        return all(word in text for word in self.q.lower().split())


def search_text(integration: IntegrationView) -> str:
    parts = [integration.name, integration.app, integration.description, *integration.categories]
    parts += [w.name for w in integration.workflows]
    return " ".join(parts).lower()


@dataclass(slots=True)
class WorkflowRow:
    view: WorkflowView
    update: Update = "none"
    new_fields: list[str] = field(default_factory=list)
    broken: bool = False
    last_run: RunSummary | None = None
    manual_webhook: Any = None
    """The webhook the merchant must add in the app by hand (``url``, ``secret``,
    ``app_name``, ``app_signs``), when the installed trigger's registration is manual."""


@dataclass(slots=True)
class Card:
    view: IntegrationView
    rows: list[WorkflowRow]
    visible: bool
    search: str

    @property
    def broken(self) -> bool:
        return any(row.broken for row in self.rows)

    @property
    def uninstalled(self) -> int:
        return sum(not row.view.installed for row in self.rows)


async def build_cards(
    session: AsyncSession, installations: InstallationService, user: User, filters: Filters
) -> list[Card]:
    integrations = [i for i in await installations.integrations_for(user) if filters.offered(i)]
    installed = await installations.installations_of(user)
    released = {w.workflow_id: w for w in await installations.released()}
    outdated = [
        i for i in installed.values() if i.workflow_id in released and i.version_number is not None
    ]
    outdated = [i for i in outdated if released[i.workflow_id].version_id != i.version_id]
    old_fields: dict[str, list[dict[str, Any]]] = {}
    if outdated:
        rows = await session.execute(
            select(WorkflowVersion.id, WorkflowVersion.fields).where(
                WorkflowVersion.id.in_([i.version_id for i in outdated])
            )
        )
        old_fields = {row[0]: row[1] or [] for row in rows.all()}
    broken: set[str] = set()
    if installed:
        broken = set(
            await session.scalars(
                select(Credential.id).where(
                    Credential.user_id == user.id, Credential.status == "broken"
                )
            )
        )
    runs = await last_runs(session, user.id, list(installed.values()))
    manual = await installations.manual_webhooks(list(installed.values()))
    cards = []
    for integration in integrations:
        card_rows = []
        for view in integration.workflows:
            row = WorkflowRow(view)
            installation = installed.get(view.workflow_id)
            if installation is not None:
                latest = released[view.workflow_id]
                if installation.version_id != latest.version_id:
                    changed = differing_fields(
                        old_fields.get(installation.version_id, []), latest.fields
                    )
                    row.update = "reinstall" if changed else "upgrade"
                    row.new_fields = _labels(changed, latest.fields)
                row.broken = any(c in broken for c in installation.credential_ids.values())
                row.last_run = runs.get(installation.id)
                row.manual_webhook = manual.get(view.workflow_id)
            card_rows.append(row)
        cards.append(
            Card(integration, card_rows, filters.matches(integration), search_text(integration))
        )
    return cards


def _labels(changed: Sequence[str], fields: Sequence[Mapping[str, Any]]) -> list[str]:
    names = {f"{f['blockId']}.{f['name']}": str(f.get("displayName") or f["name"]) for f in fields}
    return [names.get(key, key) for key in changed]


def categories_of(cards: Sequence[Card]) -> list[str]:
    return sorted({c for card in cards for c in card.view.categories})


def render_content(cards: Sequence[Card], filters: Filters, notice: str = "") -> str:
    return render(
        "page/_content.html",
        cards=cards,
        filters=filters,
        categories=categories_of(cards),
        shown=sum(card.visible for card in cards),
        notice=notice,
    )
