"""Database setup: async SQLModel on SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Table, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL.

    Stored as naive UTC, so both dialects compare and index them the same way.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_field(*, nullable: bool = False, index: bool = False) -> Any:
    """A SQLModel field holding an aware UTC datetime."""
    column: Column[datetime] = Column(UtcDateTime(), nullable=nullable, index=index)
    return Field(default=None, sa_column=column) if nullable else Field(sa_column=column)


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; SQLite files get WAL, a busy timeout and full sync."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives power loss, not only a crash. We batch commits,
    # so the fsync is paid once per batch.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


async def create_tables(engine: AsyncEngine, models: Iterable[type[SQLModel]]) -> None:
    """Create this service's tables (and only these) if they do not exist."""
    tables = [table_of(m) for m in models]

    def run(sync_conn: Any) -> None:
        SQLModel.metadata.create_all(sync_conn, tables=tables)

    async with engine.begin() as conn:
        await conn.run_sync(run)


_sqlite_writers: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction. On SQLite, writers in this process take turns here.

    SQLite admits one writer; a second one waits in its busy handler, which
    sleeps and retries with back-off, costing milliseconds per collision.
    An asyncio lock makes them queue without sleeping. PostgreSQL needs none.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    lock = _sqlite_writers.setdefault(engine, asyncio.Lock())
    async with lock, engine.begin() as conn:
        yield conn


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class, for bulk statements."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def insert_ignore(conn: AsyncConnection, table: Table | type[SQLModel]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    tbl = table if isinstance(table, Table) else table_of(table)
    if conn.dialect.name == "postgresql":
        return postgresql.insert(tbl).on_conflict_do_nothing()
    return sqlite.insert(tbl).on_conflict_do_nothing()


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"
