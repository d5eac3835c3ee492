"""Point reads run inline on the event loop's thread, for the hottest GETs on SQLite.

Through the async engine every statement costs a session, a pool checkout, a greenlet and a
hand-off to aiosqlite's thread and back: ~100 µs on a quiet machine and more under load, when
each hand-off also waits for the GIL (docs/benchmarks.md). An indexed point read in SQLite
itself takes a few µs, less than the hand-off, so ``InlineReader`` runs such reads on a
private ``sqlite3`` connection in the calling thread:

- it only reads (``PRAGMA query_only``) in autocommit mode: in WAL mode each read is its own
  read transaction, sees every committed write, and neither blocks nor waits for the writer;
- reads that belong together share one read transaction (:meth:`InlineReader.snapshot`):
  they see one state of the database, and they look at the WAL once;
- it never waits: busy timeout 0, and any ``sqlite3`` error (busy, locked, a schema change)
  answers ``None`` so that the caller takes its ordinary async path;
- it runs the caller's own Core statements (tenant filter written out), compiled once for
  the engine's dialect, and passes results through the columns' result processors, so a row
  holds the same values (e.g. aware datetimes) as one read through the engine.

It sees only committed data: callers use it for reads at the start of a request, or when
their session has not written (``store.db.session_wrote``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from embedded_ui.store.db import session_wrote, sqlite_file


@dataclass(frozen=True, slots=True)
class InlineStatement:
    sql: str
    parameters: tuple[str, ...]
    """The bind parameters' names in the order the SQL's ``?`` placeholders expect them."""
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    """``(column index, result processor)`` for the columns that have one."""


STARTUP_BUSY_TIMEOUT_SECONDS = 5.0
"""How long opening a connection may wait for a lock: while another process starts (runs the
migrations, recovers the WAL), SQLite can refuse even a pragma; with no wait at all a Granian
worker died at startup in 2 of 8 starts under ``bench/run.py``."""


def connect_without_waiting(database: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    """An autocommit connection that never waits on the loop's thread: ``pragmas`` are set
    while it may still wait for a lock (``STARTUP_BUSY_TIMEOUT_SECONDS``), then its busy
    timeout is 0. Usable from the loop's thread (one per process; SQLite serialises it)."""
    connection = sqlite3.connect(
        database,
        timeout=STARTUP_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,  # autocommit: a transaction only where one is begun
        check_same_thread=False,
    )
    for pragma in pragmas:
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("PRAGMA busy_timeout = 0")
    return connection


class _Snapshot:
    """One read transaction on the reader's connection, for a block of synchronous reads."""

    __slots__ = ("_began", "_connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self._began = False

    def __enter__(self) -> None:
        try:
            self._connection.execute("BEGIN")
        except sqlite3.Error:  # e.g. one already open: each read goes on as its own
            return
        self._began = True

    def __exit__(self, *_: object) -> None:
        if not self._began:
            return
        try:
            self._connection.execute("COMMIT")  # a read transaction: nothing to write
        except sqlite3.Error:
            with suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")


class InlineReader:
    def __init__(self, database: str, dialect: Dialect) -> None:
        self._dialect = dialect
        # Autocommit: no transaction outlives a read.
        self._connection = connect_without_waiting(database, pragmas=("query_only = ON",))
        self._prepared: dict[Select[Any], InlineStatement] = {}

    def _prepare(self, statement: Select[Any]) -> InlineStatement:
        compiled = statement.compile(dialect=self._dialect)
        processors = (
            column.type.dialect_impl(self._dialect).result_processor(self._dialect, None)
            for column in statement.selected_columns
        )
        return InlineStatement(
            str(compiled),
            tuple(compiled.positiontup or ()),
            tuple((index, p) for index, p in enumerate(processors) if p is not None),
        )

    def rows(
        self, select: Select[Any], parameters: Mapping[str, Any]
    ) -> list[tuple[Any, ...]] | None:
        """The rows of ``select`` (a module-level statement: each is compiled once), or
        ``None`` when SQLite could not answer at once."""
        statement = self._prepared.get(select)
        if statement is None:
            statement = self._prepared[select] = self._prepare(select)
        try:
            # fetchall steps the statement to its end, which ends its read transaction.
            raw: list[tuple[Any, ...]] = self._connection.execute(
                statement.sql, tuple(parameters[name] for name in statement.parameters)
            ).fetchall()
        except sqlite3.Error:
            return None
        processors = statement.processors
        if not processors:
            return raw
        # Only the columns with a processor, by index: a generator over every column of every
        # row was several µs of each hot GET.
        rows = []
        for row in raw:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            rows.append(tuple(values))
        return rows

    def snapshot(self) -> _Snapshot:
        """``with reader.snapshot():`` the reads inside share one read transaction. Each read
        on its own is a transaction of its own, and each one begins by locking a slot of the
        WAL index (``fcntl`` calls) and, under a stream of writes such as the hot
        ``POST /run/event``'s, by finding the WAL changed and its cached pages stale. Three
        point reads took ~22 µs apart and 15-19 µs together (docs/benchmarks.md, session 8).
        The block must not ``await`` (the transaction would stay open for other coroutines'
        reads and hold back checkpoints)."""
        return _Snapshot(self._connection)

    def close(self) -> None:
        self._connection.close()


async def read_rows(
    session: AsyncSession,
    reader: InlineReader | None,
    statement: Select[Any],
    params: Mapping[str, Any],
) -> Sequence[Any]:
    """A Core read: inline when there is a reader and the session has not written (the reader
    sees only committed rows), else on the session's connection, after flushing what the
    session holds (as the ORM's autoflush would before a query)."""
    if reader is not None and not session_wrote(session):
        rows = reader.rows(statement, params)
        if rows is not None:
            return rows
    if session.new or session.dirty or session.deleted:
        await session.flush()
    connection = await session.connection()
    return (await connection.execute(statement, params)).all()


def inline_reader(engine: AsyncEngine) -> InlineReader | None:
    """A reader for a SQLite file database; ``None`` for anything else."""
    database = sqlite_file(engine)
    return None if database is None else InlineReader(database, engine.dialect)
