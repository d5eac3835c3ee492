"""Migrations match the models, and the OpenAPI document describes every route fully."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from embedded_ui.store import Base


async def test_migrations_create_exactly_the_models(client, settings):
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []


async def test_openapi_documents_every_route_with_summary_schemas_and_errors(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "delete", "patch"}
    ]
    paths = {path for path, _, _ in operations}
    assert {
        "/2024-03/users",
        "/2024-03/users/batch",
        "/2024-03/users/{user_id}",
        "/2024-03/users/{user_id}/token",
        "/2024-03/user/{user_id}/token",
        "/.well-known/jwks.json",
    } <= paths
    assert not any(path.startswith("/2022-09") for path in paths), "one dated copy documented"
    bodyless = {
        "/2024-03/workflows/{workflow_id}/upgrade",
        "/2024-03/users/{user_id}/deactivate-workflows",
        "/2024-03/workflows/{workflow_id}/rerun/{execution_id}",
        "/2024-03/stream-endpoints/{endpoint_id}/enable",
    }
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        success = [status for status in operation["responses"] if status.startswith("2")]
        assert success, where
        if path.startswith("/2024-03"):
            assert {"401", "429"} <= set(operation["responses"]), where
            if method in {"post", "put"} and path not in bodyless:
                assert "requestBody" in operation, where
                assert "400" in operation["responses"], where
    error_schema = document["components"]["schemas"]["ErrorBody"]
    assert set(error_schema["required"]) == {"message", "code"}


async def test_interactive_reference_is_served_without_external_assets(client):
    page = await client.get("/schema")
    assert page.status_code == 200
    assert "/schema/assets/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text
    asset = await client.get("/schema/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert len(asset.content) > 100_000
