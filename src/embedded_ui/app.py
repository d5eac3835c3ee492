"""The one application factory: all wiring happens here."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import httpx
from advanced_alchemy.extensions.litestar import SQLAlchemyPlugin
from litestar import Litestar
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import (
    HTTPScope,
    LifeSpanReceive,
    LifeSpanScope,
    LifeSpanSend,
    Receive,
    Scope,
    Send,
)
from sqlalchemy.ext.asyncio import async_sessionmaker
from swagger_ui_bundle import swagger_ui_path

from embedded_ui import __version__
from embedded_ui.api import alias_api_version, api_router, app_icon, health, jwks
from embedded_ui.api.deps import service_values
from embedded_ui.api.hot import HotPath
from embedded_ui.api.webhooks import user_webhook, workflow_webhook
from embedded_ui.catalog import load_catalog
from embedded_ui.cors import handle_cors
from embedded_ui.credentials import Vault
from embedded_ui.engine.priority import ApiLoad
from embedded_ui.engine.runtime import EngineRuntime
from embedded_ui.errors import exception_handlers
from embedded_ui.headers import security_headers
from embedded_ui.integrations.cache import ReleasedCache
from embedded_ui.logs import configure_logging
from embedded_ui.modal import hosted_install, modal_api_router, modal_page
from embedded_ui.oauth.routes import POPUP_HANDLERS
from embedded_ui.page import PageController, hosted_page, integrations_page, theme_stylesheet
from embedded_ui.paths import STATIC_DIR
from embedded_ui.sdk import sdk_handlers
from embedded_ui.security import UserTokens, create_rate_limiter
from embedded_ui.settings import Settings
from embedded_ui.store import create_db_config, create_engine, migrate
from embedded_ui.store.inline import inline_reader
from embedded_ui.store.writer import inline_writer
from embedded_ui.workspaces.embedding import OriginPolicies


class EmbeddedUI(Litestar):
    """The service: a Litestar app that also answers every dated API prefix Alloy used."""

    hot_path: HotPath | None = None
    api_load: ApiLoad | None = None
    """Counts the requests in flight, for the in-process worker to give way to them."""

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        if scope["type"] == ScopeType.HTTP:
            http_scope = cast("HTTPScope", scope)
            alias_api_version(http_scope)
            load = self.api_load
            if load is not None:
                load.started()
            try:
                if self.hot_path is not None:
                    await self.hot_path(
                        http_scope, cast("Receive", receive), cast("Send", send), self._ordinary
                    )
                else:
                    await self._ordinary(http_scope, cast("Receive", receive), cast("Send", send))
            finally:
                if load is not None:
                    load.finished()
            return
        await super().__call__(scope, receive, send)

    async def _ordinary(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        await handle_cors(scope, receive, send, self.state.origin_policies, super().__call__)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    engine = create_engine(settings)
    db_config = create_db_config(engine)
    limiter = create_rate_limiter(settings.rate_limit_per_minute, settings.redis_url)
    # One pool of outbound connections to apps (verification, options, actions) per process.
    http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
    vault = Vault(settings.vault_keys)
    apps = load_catalog()
    runtime = EngineRuntime(
        settings=settings,
        engine=engine,
        vault=vault,
        apps=apps,
        http=http,
        service_values=service_values(settings),
        lease_seconds=settings.execution_lease_seconds,
        run_worker=settings.inprocess_worker,
    )
    # The hottest reads (users, the listing's installations) skip the async engine on SQLite.
    inline = inline_reader(engine)
    # The released workflows and the listing's JSON, shared by the route and the hot path.
    released_cache = ReleasedCache()
    writer = inline_writer(engine) if settings.hot_path else None

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await migrate(engine)
        await runtime.start()
        # What starting made (~200,000 objects: modules, the app, the catalog) lives as long
        # as the process: out of the collector's sight, a full collection takes ~3 ms instead
        # of ~150 ms, a stall of every request the worker holds when it comes.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await runtime.stop()
            if inline is not None:
                inline.close()
            if writer is not None:
                writer.close()
            await http.aclose()
            if app.state.http is not http:  # a test may swap in its own client
                await app.state.http.aclose()
            await limiter.close()
            await engine.dispose()

    add_security_headers = security_headers(hsts=settings.public_url.startswith("https://"))
    tokens = UserTokens(settings.signing_keys, settings.public_url, settings.user_token_ttl)
    app = EmbeddedUI(
        route_handlers=[
            api_router(),
            modal_api_router(PageController),
            modal_page,
            hosted_install,
            integrations_page,
            hosted_page,
            theme_stylesheet,
            *POPUP_HANDLERS,
            health,
            jwks,
            workflow_webhook,
            user_webhook,
            app_icon,
            *sdk_handlers(),
            create_static_files_router(
                "/static", directories=[STATIC_DIR], include_in_schema=False
            ),
            create_static_files_router(
                "/schema/assets", directories=[swagger_ui_path], include_in_schema=False
            ),
        ],
        plugins=[SQLAlchemyPlugin(config=db_config)],
        lifespan=[lifespan],
        state=State(
            {
                "settings": settings,
                "engine": engine,
                "db_config": db_config,
                "tokens": tokens,
                "limiter": limiter,
                "http": http,
                "apps": apps,
                "vault": vault,
                "runtime": runtime,
                "released_cache": released_cache,
                "inline_reader": inline,
                "origin_policies": OriginPolicies(async_sessionmaker(engine)),
            }
        ),
        exception_handlers=exception_handlers,
        before_send=[add_security_headers],
        request_max_body_size=settings.max_request_bytes,
        openapi_config=_openapi_config(),
        debug=False,
    )
    if settings.inprocess_worker:
        app.api_load = runtime.api_load
    if settings.hot_path and inline is not None and writer is not None:
        app.hot_path = HotPath(
            inline, writer, tokens, limiter, add_security_headers, released_cache, runtime
        )
    return app


# Litestar's default favicon comes from a CDN; the reference must work offline and under CSP.
_LOCAL_FAVICON = "<link rel='icon' type='image/png' href='/schema/assets/favicon-32x32.png'>"


def _openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="embedded-ui API",
        version=__version__,
        description=(
            "The ISV API, compatible with Alloy Embedded's. Every route is served under each of "
            "/2022-09, /2023-01, /2023-03, /2023-06, /2023-12 and /2024-03; this document shows "
            "/2024-03. Authenticate with `Authorization: Bearer <API key>`."
        ),
        path="/schema",
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url="/schema/assets/swagger-ui-bundle.js",
                css_url="/schema/assets/swagger-ui.css",
                standalone_preset_js_url="/schema/assets/swagger-ui-standalone-preset.js",
                favicon=_LOCAL_FAVICON,
            )
        ],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key from `embedded-ui keys create`.",
                ),
                "userToken": SecurityScheme(
                    type="apiKey",
                    name="x-alloy-user-token",
                    security_scheme_in="header",
                    description="A user token from `GET /users/{user_id}/token`.",
                ),
            }
        ),
    )
