"""The demo: the quickstart's ISV, Fulfillmently, with its integrations applied and released,
and a fresh development key."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker

from embedded_ui.catalog import load_catalog
from embedded_ui.errors import NotFound
from embedded_ui.integrations import IntegrationService, load_paths
from embedded_ui.paths import EXAMPLES_DIR
from embedded_ui.settings import Settings
from embedded_ui.store import Scope, create_engine, migrate
from embedded_ui.workspaces import WorkspaceService

DEMO_WORKSPACE = "Fulfillmently"
DEMO_KEY_LABEL = "demo"


async def prepare_demo(settings: Settings) -> str:
    """Create the demo workspace if needed; replace the previous demo key with a new one."""
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            service = WorkspaceService(session, actor="demo")
            try:
                workspace = await service.find(DEMO_WORKSPACE)
            except NotFound:
                workspace = await service.create(DEMO_WORKSPACE)
            for old in await service.list_keys(workspace, "development"):
                if old.label == DEMO_KEY_LABEL and old.revoked_at is None:
                    await service.revoke_key(old.id)
            issued = await service.create_key(workspace, "development", DEMO_KEY_LABEL)
            definitions = load_paths([EXAMPLES_DIR / "fulfillmently"], load_catalog())
            scope = Scope(workspace.id, "development")
            await IntegrationService(session, scope).apply(definitions, release=True)
            await session.commit()
            return issued.plaintext
    finally:
        await engine.dispose()
