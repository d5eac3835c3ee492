"""SQLAlchemy's aiosqlite dialect with one thread hand-off per statement instead of four.

aiosqlite runs each connection in a thread of its own and every call (``cursor()``,
``execute``, ``fetchall``, ``close``, ``rollback``) is a round trip through a queue to that
thread and back to the event loop. Under load each hand-off also waits for the GIL, so
SQLAlchemy's adapter, which makes four of them per statement, spent more time handing work
over than SQLite spent doing it (docs/benchmarks.md). This dialect runs a statement's cursor,
execute, fetch and close as one function in the connection's thread, and skips the ROLLBACK
hand-off when SQLite has no transaction open (a read-only request: pysqlite only opens a
transaction before a write). Everything else is SQLAlchemy's aiosqlite dialect unchanged.

Used for ``sqlite+aiosqlite`` URLs by ``store.db.create_engine``.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine import Dialect as AnyDialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

DRIVER = "eui_aiosqlite"


def _run(
    connection: sqlite3.Connection, operation: Any, parameters: Any
) -> tuple[Any, list[Any], int, int]:
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.lastrowid or 0, cursor.rowcount
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    def execute(self, operation: Any, parameters: Any = None) -> Any:
        if self.server_side:
            return super().execute(operation, parameters)
        try:
            connection = self._connection
            description, rows, lastrowid, rowcount = self.await_(
                connection._execute(_run, connection._conn, operation, parameters)
            )
            if description:
                self.description = description
                self.lastrowid = self.rowcount = -1
                self._rows = deque(rows)
            else:
                self.description = None
                self.lastrowid = lastrowid
                self.rowcount = rowcount
        except Exception as error:
            self._adapt_connection._handle_exception(error)


class _Connection(AsyncAdapt_aiosqlite_connection):
    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            return super().cursor(server_side=True)
        return _Cursor(self)

    def rollback(self) -> None:
        # Reading the flag from the event loop's thread is safe here: SQLAlchemy awaits every
        # call, so the connection's thread is idle (the connection is opened with
        # check_same_thread=False for this read).
        raw = getattr(self._connection, "_conn", None)
        if raw is not None and not raw.in_transaction:
            return
        super().rollback()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        kw["check_same_thread"] = False
        adapted = super().connect(*arg, **kw)
        return _Connection(adapted.dbapi, adapted._connection)


class Dialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> AsyncAdapt_aiosqlite_dbapi:
        return _DBAPI(__import__("aiosqlite"), __import__("sqlite3"))


registry.register(f"sqlite.{DRIVER}", __name__, "Dialect")


T = TypeVar("T")


async def in_one_hand_off(
    connection: AsyncConnection, work: Callable[[sqlite3.Connection], T]
) -> T:
    """Run ``work`` on ``connection``'s own ``sqlite3`` connection in aiosqlite's thread, in
    one hand-off. A transaction that ``work`` opens and commits there holds SQLite's write lock
    only while SQLite works: through SQLAlchemy, the COMMIT is a second hand-off that waits for
    a turn of the event loop, ~7 ms under load, and every other writer waits with it.
    ``connection`` must have no transaction of SQLAlchemy's open."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection  # aiosqlite.Connection
    result: T = await driver._execute(work, driver._conn)
    return result


def positional(
    statement: ClauseElement, dialect: AnyDialect, rows: Sequence[Mapping[str, Any]]
) -> tuple[str, list[tuple[Any, ...]]]:
    """``statement``'s SQL for ``dialect`` and each row's parameters in its order, through the
    bind processors, as SQLAlchemy would pass them to ``executemany``."""
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    names = tuple(compiled.positiontup or ())
    processors = [
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    ]
    parameters = []
    for row in rows:
        values = compiled.construct_params(dict(row))
        if values is None:  # only for a statement compiled without parameters
            raise ValueError(f"{statement!r} takes no parameters")
        parameters.append(
            tuple(
                values[name] if processor is None else processor(values[name])
                for name, processor in zip(names, processors, strict=True)
            )
        )
    return str(compiled), parameters
