"""The row inserts of ``database`` blocks (docs/engine.md, "Database destinations").

Inserts go through SQLAlchemy Core with bound parameters: the table's columns are reflected
in the insert's own transaction, every row key must be one of them, and all rows of a call
commit together or not at all. Error messages never hold the URL or its password.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from embedded_ui.engine.destinations import (
    IDENTIFIER,
    MAX_ROWS,
    DestinationError,
    normalise_url,
)
from embedded_ui.errors import InvalidRequest

__all__ = ["DestinationPool", "insert_rows"]


class DestinationPool:
    """One engine per URL, the ``max_engines`` most recently used; the rest are disposed."""

    def __init__(self, max_engines: int = 16) -> None:
        self._engines: OrderedDict[str, AsyncEngine] = OrderedDict()
        self._max = max_engines

    def _engine(self, url: str) -> AsyncEngine:
        engine = self._engines.pop(url, None) or _create_engine(url)
        self._engines[url] = engine
        return engine

    async def insert(self, url: str, table: str, rows: list[dict[str, Any]]) -> int:
        """Insert ``rows`` into ``table`` in one transaction; returns the number inserted."""
        engine = self._engine(url)
        while len(self._engines) > self._max:
            _, oldest = self._engines.popitem(last=False)
            await oldest.dispose()
        return await _insert(engine, url, table, rows)

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            await engine.dispose()


async def insert_rows(url: str, table: str, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows`` into ``table`` at ``url`` with an engine of its own (one call)."""
    engine = _create_engine(url)
    try:
        return await _insert(engine, url, table, rows)
    finally:
        await engine.dispose()


def _create_engine(raw: str) -> AsyncEngine:
    try:
        url = normalise_url(raw)
    except InvalidRequest as exc:
        raise DestinationError(exc.message) from None
    if url.drivername.startswith("sqlite"):
        return create_async_engine(url, connect_args={"timeout": 10}, pool_size=1, max_overflow=1)
    return create_async_engine(
        url,
        connect_args={"timeout": 10, "command_timeout": 60},
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _split_table(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    if not IDENTIFIER.match(name) or (schema and not IDENTIFIER.match(schema)):
        raise DestinationError(
            f"table {table[:130]!r}: expected a name of letters, digits and '_' (at most 63, "
            "not starting with a digit), optionally schema.table"
        )
    return schema or None, name


def _columns_of(table: str, rows: list[dict[str, Any]]) -> list[str]:
    if len(rows) > MAX_ROWS:
        raise DestinationError(f"{len(rows):,} rows for {table!r}: at most {MAX_ROWS:,} a call")
    keys: dict[str, None] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DestinationError(f"rows[{index}] for {table!r}: expected an object")
        for key in row:
            if not isinstance(key, str) or not IDENTIFIER.match(key):
                raise DestinationError(f"table {table!r}: {str(key)[:70]!r} is not a column name")
            keys[key] = None
    return list(keys)


async def _insert(engine: AsyncEngine, url: str, table: str, rows: list[dict[str, Any]]) -> int:
    schema, name = _split_table(table)
    keys = _columns_of(table, rows)
    if not rows:
        return 0
    try:
        async with engine.begin() as connection:
            types = await _reflect(connection, table, schema, name)
            unknown = [key for key in keys if key not in types]
            if unknown:
                raise DestinationError(
                    f"table {table!r} has no column {unknown[0]!r} "
                    f"(its columns: {', '.join(types)})"
                )
            target = sa.table(name, *(sa.column(k, types[k]) for k in keys), schema=schema)
            values = [{k: _coerce(table, k, types[k], row.get(k)) for k in keys} for row in rows]
            await connection.execute(sa.insert(target), values)
    except SQLAlchemyError as exc:
        raise DestinationError(f"table {table!r}: {_database_message(exc, url)}") from None
    except (OSError, TimeoutError) as exc:
        raise DestinationError(f"could not reach the database ({type(exc).__name__})") from None
    return len(rows)


async def _reflect(
    connection: AsyncConnection, table: str, schema: str | None, name: str
) -> dict[str, Any]:
    def columns(sync: sa.Connection) -> dict[str, Any]:
        found = sa.inspect(sync).get_columns(name, schema=schema)
        # A missing key in a JSON column is SQL NULL, not the JSON text 'null'.
        return {
            c["name"]: type(c["type"])(none_as_null=True)
            if isinstance(c["type"], sa.JSON)
            else c["type"]
            for c in found
        }

    try:
        return await connection.run_sync(columns)
    except NoSuchTableError:
        raise DestinationError(f"table {table!r} does not exist") from None


def _coerce(table: str, column: str, kind: Any, value: Any) -> Any:
    """JSON values to what the column's type expects, where nothing is lost: ISO 8601 text
    to dates and times, numbers and booleans to text for text columns, objects and arrays to
    JSON text unless the column is JSON."""
    if value is None or isinstance(kind, sa.JSON):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        if isinstance(value, str):
            return _from_text(kind, value)
    except (ValueError, InvalidOperation):
        raise DestinationError(
            f"table {table!r}, column {column!r}: the value is not a valid "
            f"{type(kind).__name__.lower()}"
        ) from None
    if isinstance(kind, sa.String):
        return json.dumps(value)  # 12 -> "12", True -> "true"
    return value


def _from_text(kind: Any, value: str) -> Any:
    if isinstance(kind, sa.DateTime):
        moment = datetime.fromisoformat(value)  # a time without an offset is UTC
        if kind.timezone and moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        if not kind.timezone and moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment
    if isinstance(kind, sa.Date):
        return date.fromisoformat(value)
    if isinstance(kind, sa.Time):
        return time.fromisoformat(value)
    if isinstance(kind, sa.Integer):
        return int(value)
    if isinstance(kind, sa.Float):
        return float(value)
    if isinstance(kind, sa.Numeric):
        return Decimal(value)
    return value


def _database_message(exc: SQLAlchemyError, url: str) -> str:
    """The driver's own first line, without SQL, parameters, the URL or its password."""
    original = getattr(exc, "orig", None) or exc
    line = (str(original).strip().splitlines() or [type(original).__name__])[0][:300]
    parsed = make_url(url)
    for secret in (url, parsed.render_as_string(hide_password=False), parsed.password):
        if secret:
            line = line.replace(str(secret), "***")
    return line
