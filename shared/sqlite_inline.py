"""SQLite for asyncio without a thread hop: aiosqlite's API, run in the loop.

aiosqlite runs each call (cursor, execute, fetch, close, commit) on a worker
thread and wakes the event loop with the result: two context switches per
call, four or five calls per statement. Measured, that was about 1 ms of CPU
for a two-statement transaction, against 0.6 ms for the same work done in the
caller's thread. Across the mesh at 20 intents/s (batches of one), CPU per
intent went from 39 to 33 ms; on a fan-out it is the same either way.
SQLite on a local file answers in microseconds, so sendmesh runs statements
in the event loop, through SQLAlchemy's aiosqlite dialect given these
connections (`async_creator`). Commits are the exception: they wait on the
disk (fsync about 0.3 ms idle, several ms with every service committing at
once), and with commits in the loop too, single-intent throughput fell from
449 to 234 intents/s. So a commit is one hop to a worker thread: one per
transaction instead of one per call.

What a thread bought, and how it is kept:
- Waiting for another writer's lock must not freeze the loop (that writer
  may be a transaction of this same process, suspended at an await). So the
  connection's own busy handler is off (busy_timeout 0) and a SQLITE_BUSY is
  retried here with an asyncio sleep that doubles from 1 ms to 50 ms, for up
  to `busy_timeout_s` like SQLite's handler would. A statement that returned
  SQLITE_BUSY did nothing, and SQLite documents COMMIT as retryable.
  SQLITE_BUSY_SNAPSHOT (a read transaction overtaken by a write) is not
  retried: it can only succeed in a new transaction, as with any driver.
- Big batches now hold the loop for as long as SQLite works on them (a
  10,000-row insert: tens of milliseconds). That is CPU the process spends
  either way; a thread only let gRPC answer in between. Waiting on the disk
  stays off the loop (the commit).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from shared import metrics

T = TypeVar("T")

# How long a statement waits for another writer before it fails, as
# `PRAGMA busy_timeout` would.
BUSY_TIMEOUT_S = 30.0
FIRST_BACKOFF_S = 0.001
MAX_BACKOFF_S = 0.05


def _busy(err: sqlite3.OperationalError) -> bool:
    # The primary code only: BUSY_SNAPSHOT and BUSY_RECOVERY carry others.
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


async def _patiently(call: Callable[[], T], deadline_s: float, *, in_thread: bool = False) -> T:
    """`call()` (in a worker thread if `in_thread`), retried after SQLITE_BUSY
    with asyncio sleeps until `deadline_s` after the first refusal."""
    give_up: float | None = None
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            return await asyncio.to_thread(call) if in_thread else call()
        except sqlite3.OperationalError as err:
            if not _busy(err):
                raise
            now = time.monotonic()
            if give_up is None:
                give_up = now + deadline_s
            elif now >= give_up:
                raise
        metrics.SQLITE_BUSY_WAITS.inc()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)


class Cursor:
    """aiosqlite.Cursor's coroutine API over a sqlite3 cursor."""

    __slots__ = ("_cursor", "_deadline_s")

    def __init__(self, cursor: sqlite3.Cursor, deadline_s: float) -> None:
        self._cursor = cursor
        self._deadline_s = deadline_s

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        await _patiently(lambda: self._cursor.execute(sql, parameters), self._deadline_s)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        rows = parameters if isinstance(parameters, list | tuple) else list(parameters)
        await _patiently(lambda: self._cursor.executemany(sql, rows), self._deadline_s)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's dialect
    uses to set the isolation level: the request is served at once."""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as err:
            future.set_exception(err)


class Connection:
    """aiosqlite.Connection's coroutine API over a sqlite3 connection."""

    def __init__(self, conn: sqlite3.Connection, deadline_s: float) -> None:
        # `_conn`, `_connection` and `_tx` are the names the dialect reads.
        self._conn = conn
        self._connection: sqlite3.Connection | None = conn
        self._tx = _RunNow()
        self._deadline_s = deadline_s

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    def cursor(self) -> Cursor:
        # SQLAlchemy enters it (`__aenter__`) rather than awaiting it.
        return Cursor(self._open().cursor(), self._deadline_s)

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        cursor = Cursor(self._open().cursor(), self._deadline_s)
        return await cursor.execute(sql, parameters)

    async def commit(self) -> None:
        # The one call that waits on the disk (fsync, and a checkpoint now and
        # then): in a thread, so the loop runs on meanwhile. Nothing else uses
        # this connection until the commit returns.
        conn = self._open()
        await _patiently(conn.commit, self._deadline_s, in_thread=True)

    async def rollback(self) -> None:
        self._open().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close at once (SQLAlchemy's terminate)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level


def connector(
    database: str, *, uri: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_S
) -> Callable[[], Awaitable[Connection]]:
    """An `async_creator` for create_async_engine: connections to `database`
    whose busy waits yield to the event loop."""

    async def connect() -> Connection:
        # timeout=0: SQLite's own busy handler would sleep in the loop's thread.
        # check_same_thread=False: the pool may close a connection from
        # another thread at exit; no two threads use one at once.
        conn = sqlite3.connect(database, timeout=0, uri=uri, check_same_thread=False)
        return Connection(conn, busy_timeout_s)

    return connect
