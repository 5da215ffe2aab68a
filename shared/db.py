"""Database setup: async SQLModel on SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Column, Connection, DateTime, Table, TypeDecorator, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from shared import sqlite_inline
from shared.logs import get_logger


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
        return _sqlite_engine(url)
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_engine(url: str | URL, **pool: Any) -> AsyncEngine:
    parsed = make_url(url)
    uri = str(parsed.query.get("uri", "")).lower() in ("true", "1")
    connect = sqlite_inline.connector(parsed.database or ":memory:", uri=uri)
    engine = create_async_engine(parsed, async_creator=connect, **pool)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def dispose(engine: AsyncEngine) -> None:
    """Close the engine's connections, and its SQLite writer's (see `write`)."""
    writer = _sqlite_writers.pop(engine, None)
    if writer is not None and writer.engine is not None:
        await writer.engine.dispose()
    await engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit survives power loss, not only a crash. We batch commits,
    # so the fsync is paid once per batch.
    cur.execute("PRAGMA synchronous=FULL")
    # 0: a busy wait is an asyncio sleep in shared/sqlite_inline.py, not a
    # sleep in the event loop's thread.
    cur.execute("PRAGMA busy_timeout=0")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


async def create_tables(engine: AsyncEngine, models: Iterable[type[SQLModel]]) -> None:
    """Create this service's tables (and only these) if they do not exist, and
    give existing ones the columns they lack (`add_missing_columns`)."""
    tables = [table_of(m) for m in models]

    def run(sync_conn: Connection) -> None:
        SQLModel.metadata.create_all(sync_conn, tables=tables)
        _add_missing_columns(sync_conn, tables)

    async with engine.begin() as conn:
        await conn.run_sync(run)


class SchemaError(RuntimeError):
    """The database cannot be brought to the models' shape at start-up."""


async def add_missing_columns(engine: AsyncEngine, models: Iterable[type[SQLModel]]) -> list[str]:
    """Add the columns the models declare and their existing tables lack.

    A database made by an earlier version keeps working when a table gains a
    column: it is added with ALTER TABLE ... ADD COLUMN (SQLite and PostgreSQL),
    and every index the models declare is created if missing. Only a column that is nullable or has a
    server default can be added to rows that exist; any other missing column
    is logged (table and column) and raises SchemaError, so start-up fails
    rather than every later query. Returns the `table.column`s added.
    """
    tables = [table_of(m) for m in models]
    async with engine.begin() as conn:
        return await conn.run_sync(lambda sync_conn: _add_missing_columns(sync_conn, tables))


def _add_missing_columns(conn: Connection, tables: Iterable[Table]) -> list[str]:
    inspector = inspect(conn)
    missing: list[Column[Any]] = []
    for table in tables:
        if not inspector.has_table(table.name, schema=table.schema):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        missing.extend(c for c in table.columns if c.name not in present)
    refused = [c for c in missing if not _can_add(c)]
    for column in refused:
        _log().error(
            "schema_column_cannot_be_added",
            table=column.table.name,
            column=column.name,
            why="NOT NULL without a server default",
        )
    if refused:
        names = ", ".join(f"{c.table.name}.{c.name}" for c in refused)
        raise SchemaError(
            f"cannot add NOT NULL column(s) without a server default to existing tables: "
            f"{names}; migrate them by hand (or give them a server_default)"
        )
    for column in missing:
        _add_column(conn, column)
    # After every column is there: an index may cover several new columns,
    # and an index added to a model over old columns must appear too.
    for table in tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    return [f"{c.table.name}.{c.name}" for c in missing]


def _log() -> structlog.stdlib.BoundLogger:
    # Looked up when used: this runs once, at start-up, and a module-level
    # logger first used before logging was configured would keep the old setup.
    return get_logger(__name__)


def _can_add(column: Column[Any]) -> bool:
    # Existing rows need a value: NULL, or the default the database fills in.
    return not column.primary_key and (column.nullable or column.server_default is not None)


def _add_column(conn: Connection, column: Column[Any]) -> None:
    preparer = conn.dialect.identifier_preparer
    ddl = CreateColumn(column).compile(dialect=conn.dialect)
    # IF NOT EXISTS: replicas starting together on PostgreSQL race to add it.
    guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
    conn.exec_driver_sql(
        f"ALTER TABLE {preparer.format_table(column.table)} ADD COLUMN {guard}{ddl}"
    )
    _log().info("schema_column_added", table=column.table.name, column=column.name)


@dataclass(frozen=True)
class _Writer:
    lock: asyncio.Lock
    # None for an in-memory database: another engine would open another one.
    engine: AsyncEngine | None


_sqlite_writers: weakref.WeakKeyDictionary[AsyncEngine, _Writer] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction. On a SQLite file, every write of this process
    goes through one connection of its own, taking turns here.

    SQLite admits one writer; a second one waits in its busy handler, which
    sleeps and retries with back-off, costing milliseconds per collision.
    An asyncio lock makes them queue without sleeping. And a connection
    that sees another connection's commit drops its whole page cache: with
    writes spread over the pool's connections, every batch started cold
    (on a fan-out, a tenth of intake's CPU). Reads keep the pool, so they
    never wait behind a write. PostgreSQL needs none of this.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    writer = _sqlite_writers.get(engine)
    if writer is None:
        on_file = engine.url.database not in (None, "", ":memory:")
        own = _sqlite_engine(engine.url, pool_size=1, max_overflow=0) if on_file else None
        writer = _sqlite_writers[engine] = _Writer(asyncio.Lock(), own)
    async with writer.lock, (writer.engine or engine).begin() as conn:
        yield conn


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel class, for bulk statements."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def insert_ignore(conn: AsyncConnection | Dialect, table: Table | type[SQLModel]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's (or a) dialect."""
    tbl = table if isinstance(table, Table) else table_of(table)
    dialect = conn if isinstance(conn, Dialect) else conn.dialect
    if dialect.name == "postgresql":
        return postgresql.insert(tbl).on_conflict_do_nothing()
    return sqlite.insert(tbl).on_conflict_do_nothing()


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


class TupleStatement:
    """An INSERT or UPDATE run over many rows given as plain tuples, for hot paths.

    `conn.execute(stmt, dicts)` costs tens of microseconds per row in
    SQLAlchemy (parameter dicts, type processing); this statement is compiled
    once per dialect and its rows go straight to the driver's executemany.
    Rows hold `params` in the order the compiled statement takes them (an
    INSERT's columns in table order; an UPDATE's SET, then WHERE bind names:
    checked when compiling) with values already in the driver's form, e.g.
    from `DriverTimes` or `driver_value`.
    """

    def __init__(self, build: Callable[[Dialect], UpdateBase], params: Sequence[str]) -> None:
        self._build = build
        self.params = tuple(params)
        self._sql: dict[str, str] = {}

    async def run(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> int:
        """Rows the statement changed, as the driver counts them; -1 if it does not."""
        if not rows:
            return 0
        result = await conn.exec_driver_sql(self._compiled(conn.dialect), rows)
        return result.rowcount

    def _compiled(self, dialect: Dialect) -> str:
        sql = self._sql.get(dialect.name)
        if sql is None:
            stmt = self._build(dialect)
            keys = list(self.params) if isinstance(stmt, Insert) else None
            compiled = stmt.compile(dialect=dialect, column_keys=keys)
            order = tuple(compiled.positiontup or ())
            if order != self.params:
                raise ValueError(f"params {self.params} do not match the statement's {order}")
            sql = self._sql[dialect.name] = compiled.string
        return sql


def driver_value(dialect: Dialect, column: Column[Any], value: Any) -> Any:
    """`value` as the driver takes it for `column` (what SQLAlchemy's type
    processing would make of it), for TupleStatement rows."""
    return binder(dialect, column.type)(value)


def binder(dialect: Dialect, type_: TypeEngine[Any]) -> Callable[[Any], Any]:
    """`driver_value` for many values of one column type: look it up once."""
    bind = type_.dialect_impl(dialect).bind_processor(dialect)
    return bind if bind is not None else _same


def _same(value: Any) -> Any:
    return value


class DriverTimes:
    """Protobuf timestamps as aware datetimes and as `UtcDateTime` driver
    values, each converted once however often it recurs (a batch's decisions
    share their timestamps)."""

    def __init__(self, dialect: Dialect) -> None:
        self._bind = binder(dialect, UtcDateTime())
        self._aware: dict[tuple[int, int], datetime] = {}
        self._driver: dict[tuple[int, int], Any] = {}

    def aware(self, ts: Any) -> datetime:
        key = (ts.seconds, ts.nanos)
        value = self._aware.get(key)
        if value is None:
            value = self._aware[key] = ts.ToDatetime(tzinfo=UTC)
        return value

    def driver(self, ts: Any) -> Any:
        key = (ts.seconds, ts.nanos)
        value = self._driver.get(key)
        if value is None:
            value = self._driver[key] = self._bind(self.aware(ts))
        return value

    def decided(self, decision: Any) -> tuple[Any, Any]:
        """A Decision's `at` and `not_before` (None when unset) as driver values."""
        not_before = self.driver(decision.not_before) if decision.HasField("not_before") else None
        return self.driver(decision.at), not_before
