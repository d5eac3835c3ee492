"""The `embedded-ui` command: serve, demo, database, workspaces and keys.

Every command that reports something takes ``--json`` for machine-readable output.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from embedded_ui.catalog import CatalogError, load_catalog
from embedded_ui.credentials import Vault
from embedded_ui.errors import EmbeddedUIError
from embedded_ui.integrations import Change, DefinitionError, IntegrationService, load_paths
from embedded_ui.rotation import rotate_vault
from embedded_ui.settings import Settings, SettingsError, new_key_value
from embedded_ui.store import ENVIRONMENTS, Scope, create_engine, current_revision, migrate
from embedded_ui.workspaces import WorkspaceService, describe_key
from embedded_ui.workspaces.embedding import EmbeddingService

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            yield session
            await session.commit()
    finally:
        await engine.dispose()


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _session(_settings()) as session:
            return await work(session)

    try:
        return asyncio.run(main())
    except EmbeddedUIError as exc:
        raise click.ClickException(exc.message) from None


def _emit(as_json: bool, payload: Any, text: str) -> None:
    click.echo(json.dumps(payload, indent=2) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
@click.version_option(package_name="embedded-ui")
def main() -> None:
    """embedded-ui: embedded integrations for your product."""


@main.command()
@click.option("--host", help="Interface to bind (EMBEDDED_UI_HOST).")
@click.option("--port", type=int, help="Port to bind (EMBEDDED_UI_PORT).")
@click.option("--workers", type=int, help="Worker processes (EMBEDDED_UI_WORKERS).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the service under Granian."""
    from embedded_ui.server import run_server

    settings = _settings()
    run_server(settings, host=host, port=port, workers=workers)


@main.command()
def worker() -> None:
    """Run workflow executions (SAQ on EMBEDDED_UI_REDIS_URL; database polling as well)."""
    from embedded_ui.engine.saq_worker import run_worker

    asyncio.run(run_worker(_settings()))


@main.command()
@click.option("--host", help="Interface to bind (EMBEDDED_UI_SANDBOX_HOST).")
@click.option("--port", type=int, help="Port to bind (EMBEDDED_UI_SANDBOX_PORT, default 8001).")
@json_option
def sandbox(host: str | None, port: int | None, as_json: bool) -> None:
    """Run the local sandbox app: an OAuth 2.0 provider and a commerce API (docs/sandbox.md)."""
    from embedded_ui.sandbox.server import run_sandbox

    try:
        run_sandbox(host=host, port=port, as_json=as_json)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--port", type=int, help="Port to bind (EMBEDDED_UI_PORT).")
@click.option(
    "--page-port", type=int, help="Port of the demo ISV page (default: the service's port + 2)."
)
def demo(port: int | None, page_port: int | None) -> None:
    """Set up a demo workspace, start the sandbox app and a demo ISV page, and serve."""
    from embedded_ui.demo import DemoSandbox, allow_loopback, prepare_demo
    from embedded_ui.demo_host import DemoHost
    from embedded_ui.server import run_server

    if port is not None:
        # Granian's workers read the environment again: give them the port and the URL.
        os.environ["EMBEDDED_UI_PORT"] = str(port)
    # Stream Data delivers to the demo's inbox on loopback: allowed for the demo only.
    allow_loopback(os.environ)
    settings = _settings()
    sandbox = DemoSandbox(settings).start()
    host: DemoHost | None = None
    try:
        host = DemoHost(
            settings.public_url,
            "",  # the key is made next, with the workflow pointed at this host's inbox
            port=page_port or settings.port + 2,
            sandbox_url=sandbox.url,
            sandbox_key=sandbox.api_key if sandbox.started_here else None,
        )
        key = asyncio.run(prepare_demo(settings, inbox_url=host.inbox_url))
        host.api_key = key
        host.start()
    except BaseException:
        if host is not None:
            host.stop()
        sandbox.stop()
        raise
    base = settings.public_url
    click.echo(
        "\n".join(
            [
                "",
                "  embedded-ui demo",
                f"  Service:          {base}",
                f"  API reference:    {base}/schema",
                f"  Development key:  {key}",
                f"  Demo ISV page:    {host.url}   <- open this, sign in, press Install",
                f"  ISV inbox:        {host.url}/inbox   (new sandbox orders arrive here)",
                f"  Sandbox app:      {sandbox.url}  (API key {sandbox.api_key})",
                "",
                "  The quickstart's story: on the demo page sign in, install Sandbox Commerce,",
                "  press 'Create an order', open the inbox (the order arrives, its signature",
                "  verified), press 'Mark fulfilled' (runs the custom event 'Fulfillment",
                "  Updated', which updates the order's status in the sandbox), and watch both",
                "  runs in the Logs panel.",
                "",
                "  Try it:",
                f"    curl -s -X POST {base}/2024-03/users \\",
                f"      -H 'Authorization: Bearer {key}' \\",
                "      -H 'Content-Type: application/json' -d '{\"username\": \"gregg\"}'",
                "",
            ]
            + (
                [
                    "  An order by hand (in the sandbox store the merchant connected):",
                    f"    curl -s -X POST {sandbox.url}/api/orders \\",
                    f"      -H 'Authorization: Bearer {sandbox.api_key}' \\",
                    "      -H 'Content-Type: application/json' -d '{\"total\": \"42.00\"}'",
                    "",
                ]
                if sandbox.started_here
                else []
            )
            + [
                "  'Fulfillment Updated' by hand (the order id from the inbox):",
                f"    curl -s -X POST {base}/2022-09/run/event \\",
                f"      -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\",
                '      -d \'{"event": "Fulfillment Updated", "userId": "gregg",',
                '           "data": {"orderId": "ord_...", "status": "FULFILLED"}}\'',
                "",
            ]
        )
    )
    sys.stdout.flush()
    try:
        run_server(settings)
    finally:
        host.stop()
        sandbox.stop()


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION."""

    async def work() -> str | None:
        engine = create_engine(_settings())
        try:
            await migrate(engine, revision)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(work())
    _emit(as_json, {"revision": current}, f"Database at revision {current}.")


@main.group()
def workspace() -> None:
    """Workspaces (one per ISV)."""


@workspace.command("create")
@click.argument("name")
@json_option
def workspace_create(name: str, as_json: bool) -> None:
    """Create workspace NAME with its development and production environments."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await WorkspaceService(session).create(name)
        return {"id": created.id, "name": created.name, "environments": list(ENVIRONMENTS)}

    result = _run(work)
    _emit(as_json, result, f"Created workspace {result['name']} ({result['id']}).")


@workspace.command("list")
@json_option
def workspace_list(as_json: bool) -> None:
    """List workspaces."""

    async def work(session: AsyncSession) -> list[dict[str, str]]:
        return [{"id": w.id, "name": w.name} for w in await WorkspaceService(session).list_all()]

    rows = _run(work)
    _emit(as_json, rows, "\n".join(f"{r['id']}  {r['name']}" for r in rows) or "No workspaces.")


@main.group()
def keys() -> None:
    """API keys for a workspace environment."""


environment_option = click.option(
    "--environment", "-e", type=click.Choice(ENVIRONMENTS), help="development or production."
)


@keys.command("create")
@click.option("--workspace", "-w", "workspace_ref", required=True, help="Workspace name or id.")
@click.option(
    "--environment", "-e", type=click.Choice(ENVIRONMENTS), required=True, help="Environment."
)
@click.option("--label", help="A note to recognise the key by.")
@json_option
def keys_create(workspace_ref: str, environment: str, label: str | None, as_json: bool) -> None:
    """Create an API key. It is shown once: store it in your secret manager."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        service = WorkspaceService(session)
        issued = await service.create_key(await service.find(workspace_ref), environment, label)
        return {**describe_key(issued.key), "key": issued.plaintext}

    result = _run(work)
    _emit(
        as_json,
        result,
        f"{result['key']}\n\nKey {result['id']} for {environment}. "
        "It is shown only now: store it somewhere safe.",
    )


@keys.command("list")
@click.option("--workspace", "-w", "workspace_ref", help="Workspace name or id.")
@environment_option
@json_option
def keys_list(workspace_ref: str | None, environment: str | None, as_json: bool) -> None:
    """List API keys (never their secrets)."""

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        service = WorkspaceService(session)
        found = await service.find(workspace_ref) if workspace_ref else None
        return [describe_key(k) for k in await service.list_keys(found, environment)]

    rows = _run(work)
    lines = [
        f"{r['id']}  {r['environment']:<11}  {r['display']}  "
        f"{'revoked ' + str(r['revokedAt']) if r['revokedAt'] else 'active'}  {r['label'] or ''}"
        for r in rows
    ]
    _emit(as_json, rows, "\n".join(lines) or "No API keys.")


@keys.command("revoke")
@click.argument("key_id")
@json_option
def keys_revoke(key_id: str, as_json: bool) -> None:
    """Revoke the API key KEY_ID; requests with it fail from now on."""

    async def work(session: AsyncSession) -> dict[str, Any]:
        return describe_key(await WorkspaceService(session).revoke_key(key_id))

    result = _run(work)
    _emit(as_json, result, f"Revoked {result['id']} ({result['display']}).")


def _tenant_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--environment", "-e", type=click.Choice(ENVIRONMENTS), required=True, help="Environment."
    )(command)
    return click.option(
        "--workspace", "-w", "workspace_ref", required=True, help="Workspace name or id."
    )(command)


async def _scope(session: AsyncSession, workspace_ref: str, environment: str) -> Scope:
    workspace = await WorkspaceService(session).find(workspace_ref)
    return Scope(workspace.id, environment)


def _print_changes(as_json: bool, changes: list[Change], dry_run: bool) -> None:
    payload = {
        "dryRun": dry_run,
        "changed": any(c.action != "unchanged" for c in changes),
        "changes": [
            {"action": c.action, "kind": c.kind, "key": c.key, "detail": c.detail} for c in changes
        ],
    }
    lines = [c.render() for c in changes] or ["Nothing to apply."]
    if dry_run:
        lines.append("(dry run: nothing was written)")
    _emit(as_json, payload, "\n".join(lines))


@main.command("apply")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_tenant_options
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--release", "release_now", is_flag=True, help="Release the drafts at once.")
@json_option
def apply_command(
    paths: tuple[Path, ...],
    workspace_ref: str,
    environment: str,
    dry_run: bool,
    release_now: bool,
    as_json: bool,
) -> None:
    """Apply integration files (or directories of them) to a workspace environment."""
    try:
        definitions = load_paths(paths, load_catalog())
    except (CatalogError, DefinitionError) as exc:
        raise click.ClickException(str(exc)) from None

    async def work(session: AsyncSession) -> list[Change]:
        scope = await _scope(session, workspace_ref, environment)
        service = IntegrationService(session, scope)
        result = await service.apply(definitions, dry_run=dry_run, release=release_now)
        return result.changes

    _print_changes(as_json, _run(work), dry_run)


@main.command("release")
@_tenant_options
@click.option("--workflow", "workflow_keys", multiple=True, help="Workflow key (default: all).")
@json_option
def release_command(
    workspace_ref: str, environment: str, workflow_keys: tuple[str, ...], as_json: bool
) -> None:
    """Release drafts as their next version numbers."""

    async def work(session: AsyncSession) -> list[Change]:
        scope = await _scope(session, workspace_ref, environment)
        return await IntegrationService(session, scope).release(list(workflow_keys) or None)

    _print_changes(as_json, _run(work), False)


@main.group()
def origins() -> None:
    """Web origins allowed to embed an environment (modal framing and browser API calls)."""


@origins.command("set")
@click.argument("allowed", nargs=-1, metavar="ORIGIN...")
@_tenant_options
@json_option
def origins_set(
    allowed: tuple[str, ...], workspace_ref: str, environment: str, as_json: bool
) -> None:
    """Replace the allowed origins (none: loopback in development, nothing in production)."""

    async def work(session: AsyncSession) -> tuple[list[str], str]:
        service = EmbeddingService(
            session, await _scope(session, workspace_ref, environment), actor="cli"
        )
        saved = await service.set_allowed_origins(allowed)
        return saved, service.policy(saved).frame_ancestors

    saved, ancestors = _run(work)
    _emit(
        as_json,
        {"environment": environment, "allowedOrigins": saved, "frameAncestors": ancestors},
        f"{environment}: {', '.join(saved) or '(none)'} (frame-ancestors {ancestors})",
    )


@origins.command("list")
@_tenant_options
@json_option
def origins_list(workspace_ref: str, environment: str, as_json: bool) -> None:
    """Show the allowed origins."""

    async def work(session: AsyncSession) -> tuple[list[str], str]:
        service = EmbeddingService(
            session, await _scope(session, workspace_ref, environment), actor="cli"
        )
        saved = await service.allowed_origins()
        return saved, service.policy(saved).frame_ancestors

    saved, ancestors = _run(work)
    _emit(
        as_json,
        {"environment": environment, "allowedOrigins": saved, "frameAncestors": ancestors},
        "\n".join(saved) or f"(none: frame-ancestors {ancestors})",
    )


@main.group()
def vault() -> None:
    """The credential vault."""


@vault.command("rotate")
@json_option
def vault_rotate(as_json: bool) -> None:
    """Re-encrypt everything the vault sealed under the first key of EMBEDDED_UI_VAULT_KEYS:
    credentials, OAuth clients, OAuth flows, installations' webhook secrets, Stream Data
    endpoints' signing secrets and destinations."""
    settings = _settings()

    async def work(session: AsyncSession) -> dict[str, int]:
        return await rotate_vault(session, Vault(settings.vault_keys))

    counts = _run(work)
    total = sum(counts.values())
    kid = settings.vault_keys[0].kid
    detail = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
    _emit(
        as_json,
        {"rotated": total, "keyId": kid, "tables": counts},
        f"Re-encrypted {total} sealed values under key {kid} ({detail}).",
    )


@main.group()
def keygen() -> None:
    """Generate secrets for the settings."""


@keygen.command("signing")
@click.option("--kid", default=None, help="Key id; defaults to a date stamp.")
def keygen_signing(kid: str | None) -> None:
    """Print a new EMBEDDED_UI_SIGNING_KEYS entry (put it first to rotate)."""
    from datetime import UTC, datetime

    click.echo(new_key_value(kid or datetime.now(UTC).strftime("k%Y%m%d%H%M%S")))


@keygen.command("vault")
@click.option("--kid", default=None, help="Key id; defaults to a date stamp.")
def keygen_vault(kid: str | None) -> None:
    """Print a new EMBEDDED_UI_VAULT_KEYS entry (put it first, then `vault rotate`)."""
    from datetime import UTC, datetime

    click.echo(new_key_value(kid or datetime.now(UTC).strftime("v%Y%m%d%H%M%S")))


@main.group("oauth-clients")
def oauth_clients() -> None:
    """Your OAuth client (id and secret) at each app, per environment."""


def _oauth_client_service(session: AsyncSession, scope: Scope) -> Any:
    from embedded_ui.oauth import OAuthClientService

    return OAuthClientService(
        session, scope, Vault(_settings().vault_keys), load_catalog(), actor="cli"
    )


def _read_secret(path: str) -> str:
    """The client secret from a file, or from standard input with ``-``: never an argument,
    which any user on the machine could read in the process list."""
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        message = f"--client-secret-file: cannot read {path}: {exc.strerror}"
        raise click.ClickException(message) from None
    secret = raw.strip()
    if not secret:
        raise click.ClickException("--client-secret-file: the secret is empty.")
    return secret


@oauth_clients.command("set")
@_tenant_options
@click.option("--app", "app_key", required=True, help="The catalog app, e.g. hubspot.")
@click.option("--client-id", required=True, help="The client id the app gave you.")
@click.option(
    "--client-secret-file",
    required=True,
    help="File holding the client secret, or - to read it from standard input.",
)
@json_option
def oauth_clients_set(
    workspace_ref: str,
    environment: str,
    app_key: str,
    client_id: str,
    client_secret_file: str,
    as_json: bool,
) -> None:
    """Save the OAuth client for APP (replaces any earlier one). The secret is encrypted."""
    from embedded_ui.oauth import describe_oauth_client

    secret = _read_secret(client_secret_file)

    async def work(session: AsyncSession) -> dict[str, Any]:
        scope = await _scope(session, workspace_ref, environment)
        row = await _oauth_client_service(session, scope).set(app_key, client_id, secret)
        return describe_oauth_client(row)

    result = _run(work)
    _emit(as_json, result, f"OAuth client for {result['app']} saved ({environment}).")


@oauth_clients.command("list")
@_tenant_options
@json_option
def oauth_clients_list(workspace_ref: str, environment: str, as_json: bool) -> None:
    """List the environment's OAuth clients (never their secrets)."""
    from embedded_ui.oauth import describe_oauth_client

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        scope = await _scope(session, workspace_ref, environment)
        return [
            describe_oauth_client(r) for r in await _oauth_client_service(session, scope).list()
        ]

    rows = _run(work)
    lines = [f"{r['app']:<16} {r['clientId']}  updated {r['updatedAt']}" for r in rows]
    _emit(as_json, rows, "\n".join(lines) or "No OAuth clients.")


@oauth_clients.command("delete")
@_tenant_options
@click.option("--app", "app_key", required=True, help="The catalog app.")
@json_option
def oauth_clients_delete(workspace_ref: str, environment: str, app_key: str, as_json: bool) -> None:
    """Delete the OAuth client for APP; new OAuth flows for it fail until one is set."""

    async def work(session: AsyncSession) -> None:
        scope = await _scope(session, workspace_ref, environment)
        await _oauth_client_service(session, scope).delete(app_key)

    _run(work)
    _emit(as_json, {"app": app_key, "deleted": True}, f"OAuth client for {app_key} deleted.")


@main.group()
def destinations() -> None:
    """Named databases that `database` blocks insert into, per environment."""


def _destination_service(session: AsyncSession, scope: Scope) -> Any:
    from embedded_ui.engine.destinations import DestinationService

    settings = _settings()
    return DestinationService(
        session,
        scope,
        Vault(settings.vault_keys),
        actor="cli",
        service_database_url=settings.database_url,
        settings=settings,
    )


@destinations.command("set")
@click.argument("name")
@click.argument("url")
@_tenant_options
@json_option
def destinations_set(
    name: str, url: str, workspace_ref: str, environment: str, as_json: bool
) -> None:
    """Save the database URL of destination NAME (replaces any earlier one; encrypted).

    URL is a SQLAlchemy URL: postgresql://user:password@host/db or sqlite:////path/file.db.
    Give - to read it from standard input, so the password stays out of the process list.
    """
    from embedded_ui.engine.destinations import describe_destination

    if url == "-":
        url = sys.stdin.read().strip()

    async def work(session: AsyncSession) -> dict[str, Any]:
        scope = await _scope(session, workspace_ref, environment)
        row, saved = await _destination_service(session, scope).set(name, url)
        return describe_destination(row, saved)

    result = _run(work)
    _emit(as_json, result, f"Destination {result['name']} saved ({environment}): {result['url']}")


@destinations.command("list")
@_tenant_options
@json_option
def destinations_list(workspace_ref: str, environment: str, as_json: bool) -> None:
    """List the environment's destinations (passwords masked)."""
    from embedded_ui.engine.destinations import describe_destination

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        scope = await _scope(session, workspace_ref, environment)
        rows = await _destination_service(session, scope).list()
        return [describe_destination(row, url) for row, url in rows]

    rows = _run(work)
    lines = [f"{r['name']:<20} {r['url']}  updated {r['updatedAt']}" for r in rows]
    _emit(as_json, rows, "\n".join(lines) or "No destinations.")


@destinations.command("delete")
@click.argument("name")
@_tenant_options
@json_option
def destinations_delete(name: str, workspace_ref: str, environment: str, as_json: bool) -> None:
    """Delete destination NAME; `database` blocks using it fail until it is set again."""

    async def work(session: AsyncSession) -> None:
        scope = await _scope(session, workspace_ref, environment)
        await _destination_service(session, scope).delete(name)

    _run(work)
    _emit(as_json, {"name": name, "deleted": True}, f"Destination {name} deleted.")
