"""Each process keeps every environment's released workflows in memory, keyed by the
environment's revision (stored in the database and raised by every apply and release), so a
listing reads one small row instead of every workflow definition, and is never stale.

Beside them it keeps the listing's JSON as encoded fragments (``EncodedListing``): what
``GET /integrations`` shows is the same for every user except each user's installations, which
are read on every request and spliced in (``InstallationService.integrations_json``). The
fragments live and die with their entry, so they are exactly as fresh as the workflows."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded_ui.integrations.installations import ReleasedWorkflow
    from embedded_ui.integrations.views import WorkflowView


@dataclass(slots=True)
class CachedRelease:
    revision: int
    workflows: list[ReleasedWorkflow]
    uninstalled_views: dict[str, WorkflowView] = field(default_factory=dict)
    """The view of each workflow for a user who has not installed it: the same for everyone."""
    encoded: EncodedListing | None = None
    """The listing's JSON fragments, built on first use (``InstallationService``)."""


@dataclass(frozen=True, slots=True)
class EncodedIntegration:
    """One integration of the listing, as JSON bytes that msgspec encoded once."""

    integration_id: str
    heads: tuple[bytes, bytes]
    """The integration's object up to and including ``"workflows":[``, with ``installed``
    false (index 0) and true (index 1)."""
    workflows: tuple[tuple[WorkflowView, bytes], ...]
    """Each workflow's view and its JSON, both as seen by a user who has not installed it."""
    workflow_ids: frozenset[str]
    plain: bytes
    """The whole integration for a user who installed none of its workflows."""


@dataclass(frozen=True, slots=True)
class EncodedListing:
    """The whole listing's fragments, arranged so that a request copies 116 KB once."""

    integrations: tuple[EncodedIntegration, ...]
    position: dict[str, int]
    """Workflow id -> the index of its integration in ``integrations``."""
    plain: bytes
    """The whole listing (``{"data":[...]}``) for a user who installed nothing."""
    skeleton: tuple[bytes, ...]
    """``plain`` in pieces: the envelope's head, each integration's ``plain`` (integration
    ``i`` at index ``2 * i + 1``) with commas between them, the envelope's tail."""


class ReleasedCache:
    def __init__(self, max_environments: int = 1024) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedRelease] = OrderedDict()
        self._max = max_environments

    def get(self, key: tuple[str, str], revision: int) -> CachedRelease | None:
        entry = self._entries.get(key)
        if entry is None or entry.revision != revision:
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str], entry: CachedRelease) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
