"""SQLite runs in the event loop's thread; a wait for another writer's lock
is an asyncio sleep, so the loop keeps serving everything else meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import func, select
from sqlmodel import Field, SQLModel

from shared import db, metrics, sqlite_inline


class Entry(SQLModel, table=True):
    __tablename__ = "inline_entries"
    id: int = Field(primary_key=True)
    note: str = ""


def busy_waits() -> float:
    return metrics.SQLITE_BUSY_WAITS._value.get()


async def test_a_write_waits_for_another_writer_without_stopping_the_loop(tmp_path):
    path = tmp_path / "inline.db"
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
    await db.create_tables(engine, [Entry])
    table = db.table_of(Entry)
    # Another process's writer, as far as SQLite can tell: it holds the lock.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO inline_entries (id, note) VALUES (1, 'other')")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    async def write() -> None:
        async with db.write(engine) as conn:
            await conn.execute(table.insert().values(id=2, note="ours"))

    waits_before = busy_waits()
    ticker = asyncio.create_task(tick())
    try:
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        # The fault happened: our write is stuck behind the lock, and waiting.
        assert not writing.done()
        assert busy_waits() > waits_before
        ticks_while_locked = ticks
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(table.c.id, table.c.note))).all()
        assert sorted(rows) == [(1, "other"), (2, "ours")]
        # The loop ran on while the write waited (30 s in SQLite's own handler).
        assert ticks_while_locked >= 10
    finally:
        ticker.cancel()
        other.close()
        await db.dispose(engine)


async def test_a_write_gives_up_after_the_busy_timeout(tmp_path):
    path = tmp_path / "inline.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE t (a INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    conn = await sqlite_inline.connector(str(path), busy_timeout_s=0.1)()
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await conn.execute("INSERT INTO t VALUES (1)")
        assert time.monotonic() - started >= 0.1
    finally:
        other.close()
        await conn.close()


async def test_reads_stream_and_writes_report_their_rows(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    await db.create_tables(engine, [Entry])
    table = db.table_of(Entry)
    try:
        async with db.write(engine) as conn:
            await conn.execute(table.insert(), [{"id": i, "note": f"n{i}"} for i in range(250)])
            updated = await conn.execute(table.update().where(table.c.id < 100).values(note="low"))
            assert updated.rowcount == 100
        async with engine.connect() as conn:
            stream = await conn.stream(select(table.c.id).order_by(table.c.id))
            seen = [row.id async for row in stream]
            low = (
                await conn.execute(
                    select(func.count()).select_from(table).where(table.c.note == "low")
                )
            ).scalar()
        assert seen == list(range(250))
        assert low == 100
    finally:
        await db.dispose(engine)


async def test_a_closed_connection_says_so(tmp_path):
    conn = await sqlite_inline.connector(str(tmp_path / "closed.db"))()
    await conn.close()
    with pytest.raises(ValueError, match="closed"):
        await conn.execute("SELECT 1")


async def test_statements_run_in_the_loops_thread_and_commits_in_another(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    await db.create_tables(engine, [Entry])
    table = db.table_of(Entry)
    threads: dict[str, set[int]] = {}

    def traced(sql: str) -> None:
        threads.setdefault(sql.split()[0].upper(), set()).add(threading.get_ident())

    try:
        async with db.write(engine) as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert isinstance(raw, sqlite_inline.Connection)
            raw._conn.set_trace_callback(traced)
            await conn.execute(table.insert().values(id=1, note="traced"))
        raw._conn.set_trace_callback(None)
        loop_thread = threading.get_ident()
        assert threads["INSERT"] == {loop_thread}
        # The fsync waits in a worker thread, not in the loop.
        assert threads["COMMIT"] and loop_thread not in threads["COMMIT"]
    finally:
        await db.dispose(engine)
