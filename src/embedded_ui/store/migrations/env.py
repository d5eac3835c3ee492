"""Alembic environment: always runs on a connection handed over by embedded_ui.store.db."""

from __future__ import annotations

from alembic import context

from embedded_ui.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `embedded-ui db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
