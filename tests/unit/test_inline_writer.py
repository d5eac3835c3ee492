"""store/writer.py: group commit on a real SQLite file, with a real second connection holding
the write lock where a test needs it."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine
from sqlalchemy.dialects import sqlite

from embedded_ui.store import writer as writer_module
from embedded_ui.store.writer import InlineWriter

metadata = MetaData()
parent = Table(
    "parent",
    metadata,
    Column("id", String(10), primary_key=True),
    Column("name", String(20), unique=True, nullable=False),
    Column("created_at", DateTimeUTC(timezone=True), nullable=False),
)
child = Table(
    "child",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", String(10), ForeignKey("parent.id"), nullable=False),
)
NOW = datetime(2026, 12, 3, 6, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "writer.db")
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    yield path


def _rows(path: str, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608


def _size(path: str) -> int:
    return os.path.getsize(path)


def _parent(key: str, name: str) -> tuple[Table, dict[str, object]]:
    return parent, {"id": key, "name": name, "created_at": NOW}


async def test_units_of_one_loop_iteration_share_one_transaction(database: str) -> None:
    writer = InlineWriter(database, sqlite.dialect())
    statements: list[str] = []
    writer._connection.set_trace_callback(statements.append)
    outcomes = await asyncio.gather(
        *(writer.insert([_parent(f"p{i}", f"name{i}")]) for i in range(50))
    )
    assert outcomes == [True] * 50
    assert statements.count("COMMIT") == 1
    rows = _rows(database, "parent")
    assert len(rows) == 50
    # Bind processors ran: the datetime is stored as the ORM stores it, in UTC.
    assert rows[0][2] == "2026-12-03 06:00:00.123000"
    writer.close()


async def test_a_unit_that_breaks_a_constraint_is_refused_alone_and_whole(database: str) -> None:
    writer = InlineWriter(database, sqlite.dialect())
    await writer.insert([_parent("p1", "taken")])
    outcomes = await asyncio.gather(
        writer.insert([_parent("p2", "fresh")]),
        # Two rows, the second one a duplicate name: neither may be written.
        writer.insert([_parent("p3", "also-fresh"), _parent("p4", "taken")]),
        writer.insert([(child, {"parent_id": "p2"})]),
        writer.insert([(child, {"parent_id": "nobody"})]),  # foreign key
    )
    assert outcomes == [True, False, True, False]
    assert [row[0] for row in _rows(database, "parent")] == ["p1", "p2"]
    assert _rows(database, "child") == [(1, "p2")]
    writer.close()


async def test_a_held_write_lock_is_waited_for_without_blocking_the_loop(database: str) -> None:
    writer = InlineWriter(database, sqlite.dialect())
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    insert = asyncio.create_task(writer.insert([_parent("p1", "waited")]))
    ticks = 0
    for _ in range(20):  # the loop keeps running while the writer retries
        await asyncio.sleep(0.001)
        ticks += 1
    assert not insert.done() and ticks == 20
    holder.execute("COMMIT")
    assert await asyncio.wait_for(insert, 2) is True
    assert [row[0] for row in _rows(database, "parent")] == ["p1"]
    holder.close()
    writer.close()


class _CountingBegins:
    """The writer's connection, counting its tries for the write lock."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.begins = 0

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE":
            self.begins += 1
        return self.connection.execute(sql, *args)

    def close(self) -> None:
        self.connection.close()


async def _tries_while_held(database: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """How often the writer tried for the write lock during ten turns of the loop while
    another connection held it; then the lock is released and the insert must commit."""
    writer = InlineWriter(database, sqlite.dialect())
    counting = _CountingBegins(writer._connection)
    monkeypatch.setattr(writer, "_connection", counting)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    insert = asyncio.create_task(writer.insert([_parent("p1", "held")]))
    for _ in range(10):  # ten turns of the loop, far quicker than any timer set here
        await asyncio.sleep(0)
    assert not insert.done()
    tries = counting.begins
    holder.execute("COMMIT")
    assert await asyncio.wait_for(insert, 2) is True
    assert [row[0] for row in _rows(database, "parent")] == ["p1"]
    holder.close()
    writer.close()
    return tries


async def test_a_lock_held_for_a_moment_is_tried_again_at_the_loops_next_turns(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process's flush holds the lock for a fraction of a millisecond; a timer (whole
    # milliseconds on uvloop) would leave the requests waiting on this flush idle meanwhile.
    monkeypatch.setattr(writer_module, "NEXT_TURN_SECONDS", 60.0)  # the whole test is "a moment"
    assert await _tries_while_held(database, monkeypatch) >= 5  # turn after turn, no timer


async def test_after_a_moment_a_held_lock_is_tried_again_on_a_timer(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "NEXT_TURN_SECONDS", 0.0)  # the moment is over at once
    monkeypatch.setattr(writer_module, "_RETRY_DELAY_SECONDS", 0.2)  # ten turns take far less
    # No spinning on the loop: after the first try, the next one waits for its timer.
    assert await _tries_while_held(database, monkeypatch) == 1


async def test_a_lock_held_too_long_sends_the_units_elsewhere(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "BUSY_GIVE_UP_SECONDS", 0.05)
    writer = InlineWriter(database, sqlite.dialect())
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    outcomes = await asyncio.wait_for(
        asyncio.gather(writer.insert([_parent("p1", "a")]), writer.insert([_parent("p2", "b")])),
        2,
    )
    assert outcomes == [False, False]
    holder.execute("ROLLBACK")
    holder.close()
    assert _rows(database, "parent") == []
    # The writer works again once the lock is free.
    assert await writer.insert([_parent("p3", "c")]) is True
    writer.close()


def test_opening_waits_for_a_process_that_holds_the_database_for_a_moment(database: str) -> None:
    # Another process starting (migrating, recovering the WAL) can hold an exclusive lock: the
    # writer's first pragma used to fail at once ("database is locked") and kill the worker.
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    impatient = sqlite3.connect(database, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # what it used to meet
        impatient.execute("PRAGMA synchronous=NORMAL")
    impatient.close()
    release = threading.Timer(0.2, holder.close)  # exclusive mode keeps the lock until then
    release.start()
    writer = InlineWriter(database, sqlite.dialect())
    release.join()
    # Once open it never waits on the loop's thread again.
    assert writer._connection.execute("PRAGMA busy_timeout").fetchone() == (0,)
    assert writer._connection.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
    writer.close()


async def test_the_wal_is_checkpointed_off_the_loop_thread(database: str) -> None:
    writer = InlineWriter(database, sqlite.dialect())
    autocheckpoint = writer._connection.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert autocheckpoint == (0,)  # never on the loop's thread
    checkpointer = writer._checkpointer._thread
    assert not checkpointer.is_alive()  # no thread until something was written
    before = _size(database)
    for batch in range(20):
        await asyncio.gather(
            *(writer.insert([_parent(f"p{batch}-{i}", f"n{batch}-{i}")]) for i in range(100))
        )
    # The rows are in the WAL; the checkpointer thread copies them into the database file.
    deadline = asyncio.get_running_loop().time() + 5
    while _size(database) <= before + 100_000:
        assert asyncio.get_running_loop().time() < deadline, "no checkpoint within 5 s"
        await asyncio.sleep(0.05)
    assert len(_rows(database, "parent")) == 2000
    writer.close()
    assert not checkpointer.is_alive()
