"""Group commit for the hot path's inserts on SQLite: many requests' rows, one transaction.

Through the async engine an INSERT costs a session, a pool checkout, greenlet switches and two
hand-offs to aiosqlite's thread, and each request's COMMIT waits for SQLite's single writer
lock on its own (docs/benchmarks.md measured ~1.6 ms of CPU per ``POST /users``). SQLite
itself inserts a row in microseconds, so ``InlineWriter`` runs inserts on a private ``sqlite3``
connection in the event loop's thread and commits together what arrived meanwhile:

- ``insert`` queues a *unit* (the rows of one request, all or nothing) and waits; the first
  unit schedules one flush after ``GATHER_SECONDS``, which writes every unit queued by then
  in one ``BEGIN IMMEDIATE … COMMIT``, each unit inside its own SAVEPOINT;
- a unit that breaks a constraint is rolled back alone and answered ``False``: the caller then
  takes its ordinary path, which meets the same constraint and explains it;
- it never waits on the loop's thread: the lock is taken with busy timeout 0, and while
  another process or connection holds it the flush is retried at the loop's next turns, then
  a little later, for at most ``BUSY_GIVE_UP_SECONDS``, after which its units are answered
  ``False`` as well;
- a unit answered ``True`` is committed with the same durability as the engine's writes
  (WAL, ``synchronous=NORMAL``, store/db.py), before the caller answers its request.

Statements are compiled once per table and column set for the engine's dialect, and values
go through the columns' bind processors, so a row reads back as if the ORM had written it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from embedded_ui.store.db import sqlite_file
from embedded_ui.store.inline import connect_without_waiting

BUSY_GIVE_UP_SECONDS = 0.5
"""How long a flush keeps retrying a held write lock before its units take the ordinary path."""
_RETRY_DELAY_SECONDS = 0.001
"""Between two tries for the lock, once ``NEXT_TURN_SECONDS`` have passed since the first miss."""
NEXT_TURN_SECONDS = 0.0005
"""For this long after a try finds the lock held, the flush tries again at the loop's next turn
(after the callbacks already ready, such as other requests) rather than after a timer.
Another process's flush holds the lock for a fraction of a millisecond, but uvloop's timers
count whole milliseconds: under bench/engine.py ``run-event`` (two processes) each miss cost
~1.3 ms, a process whose requests all waited on its flush sat idle meanwhile, and flushes
waited 10-13% of the time. Retrying at the next turn: 3%, for 1,400-2,300 failed tries a
second, each a few µs. Over alternate runs (docs/benchmarks.md, session 8) ``POST /run/event``
went from a median 0.56x to 0.65x its baseline and ``POST /users`` from 0.46x to 0.52x, but
the latter's p99 from 7-8 ms to 7-26 ms (median 12): the retries spend CPU the lock's holder
may be waiting for. Windows of 0.1-0.2 ms kept the p99 and lost the throughput. A lock held
longer (a migration, the engine's own transactions) falls back to the timer."""
GATHER_SECONDS = 0.0
"""How long the first unit of a batch waits for others: none, beyond the current turn of the
event loop (a zero-delay timer runs after the callbacks already ready, so the requests handled
in the same turn share one transaction). With two processes taking turns at SQLite's write
lock, a 1 ms wait made batches of ~6 to ~12 but left the loop idle meanwhile: ``POST /users``
(bench/run.py, Granian x2, uvloop, whose timers count whole milliseconds) made ~9,700 req/s at
1 ms, ~7,900 at 2 ms and ~12,000 with no wait (batches of ~7)."""
CHECKPOINT_INTERVAL_SECONDS = 0.25

Unit = Sequence[tuple[Table, Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    parameters: tuple[str, ...]
    processors: tuple[tuple[int, Any], ...]
    """``(parameter index, bind processor)`` for the parameters that have one."""


class InlineWriter:
    def __init__(self, database: str, dialect: Dialect) -> None:
        self._dialect = dialect
        # The engine's settings (store/db.py) that matter to a writer; and no checkpoints on
        # the loop's thread (they copy the WAL back and fsync): ``_Checkpointer`` runs them.
        self._connection = connect_without_waiting(
            database, pragmas=("synchronous=NORMAL", "foreign_keys=ON", "wal_autocheckpoint=0")
        )
        self._checkpointer = _Checkpointer(database)
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._queued: list[
            tuple[list[tuple[_Compiled, tuple[Any, ...]]], asyncio.Future[bool]]
        ] = []
        self._flush_scheduled = False

    async def insert(self, unit: Unit) -> bool:
        """Insert ``unit``'s rows, all or none; ``True`` once committed, ``False`` when a
        constraint refused them or the write lock stayed busy (nothing of it is written)."""
        statements = [self._bind(table, values) for table, values in unit]
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._queued.append((statements, done))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(GATHER_SECONDS, self._flush, time.monotonic())
        return await done

    def _bind(self, table: Table, values: Mapping[str, Any]) -> tuple[_Compiled, tuple[Any, ...]]:
        key = (table.name, tuple(values))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(table, tuple(values))
        row = [values[name] for name in compiled.parameters]
        # A row often holds one value twice (an execution's created_at and available_at are
        # the same moment): each distinct value goes through a processor once. A tenth of a
        # hot POST /run/event went to these processors and the loop around them. (``values``
        # keeps every original value alive meanwhile, so no id is reused within the loop.)
        done: dict[tuple[int, int], Any] = {}
        for index, process in compiled.processors:
            value = row[index]
            seen = (id(process), id(value))
            if seen in done:
                row[index] = done[seen]
            else:
                row[index] = done[seen] = process(value)
        return compiled, tuple(row)

    def _compile(self, table: Table, columns: tuple[str, ...]) -> _Compiled:
        compiled = insert(table).compile(dialect=self._dialect, column_keys=list(columns))
        names = tuple(compiled.positiontup or ())
        processors = (
            compiled.binds[name].type.dialect_impl(self._dialect).bind_processor(self._dialect)
            for name in names
        )
        return _Compiled(
            str(compiled),
            names,
            tuple((index, p) for index, p in enumerate(processors) if p is not None),
        )

    def _flush(self, first_try: float, first_miss: float | None = None) -> None:
        try:
            self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:  # mostly: the write lock is held elsewhere
            loop = asyncio.get_running_loop()
            now = time.monotonic()
            if now - first_try < BUSY_GIVE_UP_SECONDS:
                first_miss = now if first_miss is None else first_miss
                if now - first_miss < NEXT_TURN_SECONDS:
                    loop.call_soon(self._flush, first_try, first_miss)
                else:
                    loop.call_later(_RETRY_DELAY_SECONDS, self._flush, first_try, first_miss)
                return
            self._flush_scheduled = False
            self._answer_all(False)
            return
        self._flush_scheduled = False
        queued, self._queued = self._queued, []
        outcomes: list[bool] = []
        try:
            for statements, _ in queued:
                outcomes.append(self._write_unit(statements))
            self._connection.execute("COMMIT")
            self._checkpointer.wrote()
        except Exception:  # nothing of this batch is committed: every unit goes elsewhere
            self._rollback()
            outcomes = [False] * len(queued)
        for (_, done), outcome in zip(queued, outcomes, strict=True):
            if not done.done():
                done.set_result(outcome)

    def _write_unit(self, statements: list[tuple[_Compiled, tuple[Any, ...]]]) -> bool:
        execute = self._connection.execute
        if len(statements) == 1:  # one statement is atomic by itself: no savepoint needed
            compiled, parameters = statements[0]
            try:
                execute(compiled.sql, parameters)
            except sqlite3.IntegrityError:
                return False
            return True
        execute("SAVEPOINT unit")
        try:
            for compiled, parameters in statements:
                execute(compiled.sql, parameters)
        except sqlite3.IntegrityError:
            execute("ROLLBACK TO unit")
            execute("RELEASE unit")
            return False
        execute("RELEASE unit")
        return True

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # no transaction left to roll back
            self._connection.execute("ROLLBACK")

    def _answer_all(self, outcome: bool) -> None:
        queued, self._queued = self._queued, []
        for _, done in queued:
            if not done.done():
                done.set_result(outcome)

    def close(self) -> None:
        self._answer_all(False)
        self._connection.close()
        self._checkpointer.stop()


class _Checkpointer:
    """Checkpoints the WAL from a thread of its own after the writer committed, at most every
    ``CHECKPOINT_INTERVAL_SECONDS``. PASSIVE: it never blocks readers or writers; what it
    could not copy yet waits for the next round."""

    def __init__(self, database: str) -> None:
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        # Started by the first commit: an app that is built but never started (or never
        # writes) keeps no thread.
        self._thread = threading.Thread(
            target=self._run, args=(database,), name="sqlite-checkpointer", daemon=True
        )

    def wrote(self) -> None:
        """The writer committed: checkpoint soon."""
        if not self._thread.is_alive() and not self._stopping.is_set():
            self._thread.start()
        self._wrote.set()

    def _run(self, database: str) -> None:
        connection = sqlite3.connect(database, timeout=5, isolation_level=None)
        try:
            while not self._stopping.is_set():
                if not self._wrote.wait(timeout=1.0):
                    continue
                self._wrote.clear()
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._stopping.wait(CHECKPOINT_INTERVAL_SECONDS)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stopping.set()
        self._wrote.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def inline_writer(engine: AsyncEngine) -> InlineWriter | None:
    """A writer for a SQLite file database; ``None`` for anything else."""
    database = sqlite_file(engine)
    return None if database is None else InlineWriter(database, engine.dialect)
