"""The in-app inbox: one row per delivered message, read newest first.

Every state change is one UPDATE (services/inapp/states.py says what each
mark does), and the counts after it are read in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Index,
    Select,
    Table,
    UniqueConstraint,
    and_,
    case,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel

from services.inapp.states import TRANSITIONS, Mark, Status, Target
from shared.db import TupleStatement, binder, insert_ignore, write

MAX_PAGE_SIZE = 100
# Keys per lookup: two parameters each, well under PostgreSQL's 32,767.
LOOKUP_CHUNK = 5000


class InboxMessage(SQLModel, table=True):
    __tablename__ = "inbox_messages"
    __table_args__ = (
        # A redelivered send never makes a second message.
        UniqueConstraint("tenant_id", "delivery_id", name="uq_inbox_delivery"),
        # The feed query: one user's messages, newest first.
        Index("ix_inbox_feed", "tenant_id", "user_id", "created_at", "message_id"),
        # The badge: unread and unseen counts read from this index alone
        # (a covering index: SQLite's plan says USING COVERING INDEX).
        Index("ix_inbox_counts", "tenant_id", "user_id", "archived_at", "read_at", "seen_at"),
    )

    message_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64)
    user_id: str = Field(max_length=256)
    delivery_id: str = Field(max_length=64)
    intent_id: str = Field(max_length=64)
    category: str = Field(default="", max_length=128)
    title: str = ""
    body: str = ""
    action_url: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    read_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    archived_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


TABLES: tuple[type[SQLModel], ...] = (InboxMessage,)


@dataclass(frozen=True, slots=True)
class NewInboxRow:
    """A message about to be inserted: the same columns as InboxMessage, without
    SQLModel's validation, which cost more than the insert itself on a fan-out."""

    message_id: str
    tenant_id: str
    user_id: str
    delivery_id: str
    intent_id: str
    category: str
    title: str
    body: str
    action_url: str
    data: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None = None
    read_at: datetime | None = None
    archived_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last message shown (feed order is created_at, message_id)."""

    created_at: datetime
    message_id: str


@dataclass(frozen=True)
class Counts:
    unread: int
    unseen: int


def _table() -> Table:
    table: Table = InboxMessage.__table__  # type: ignore[attr-defined]
    return table


def as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _message(row: Any) -> InboxMessage:
    message = InboxMessage.model_validate(dict(row._mapping))
    for name in ("created_at", "seen_at", "read_at", "archived_at"):
        value = getattr(message, name)
        if value is not None:
            setattr(message, name, as_utc(value))
    return message


# Table order, as TupleStatement checks.
_COLUMNS = (
    "message_id",
    "tenant_id",
    "user_id",
    "delivery_id",
    "intent_id",
    "category",
    "title",
    "body",
    "action_url",
    "data",
    "created_at",
    "seen_at",
    "read_at",
    "archived_at",
)
_INSERT = TupleStatement(lambda dialect: insert_ignore(dialect, _table()), _COLUMNS)


async def insert_new(
    engine: AsyncEngine, messages: Sequence[NewInboxRow | InboxMessage]
) -> set[tuple[str, str]]:
    """Insert the batch in one statement; returns the (tenant, delivery id) pairs that were new.

    Rows go to the driver as tuples (a fan-out inserts thousands a batch).
    When the driver counts every row inserted, all were new; otherwise (a
    redelivery, or a driver that does not count) the rows holding our
    message ids are the new ones.
    """
    if not messages:
        return set()
    columns = _table().c
    async with write(engine) as conn:
        data = binder(conn.dialect, columns.data.type)
        stamp = binder(conn.dialect, columns.created_at.type)  # every time column's type
        times: dict[datetime, Any] = {}  # a batch's rows share their times

        def at(value: datetime | None) -> Any:
            if value is None:
                return None
            if value not in times:
                times[value] = stamp(value)
            return times[value]

        rows = [
            (
                m.message_id,
                m.tenant_id,
                m.user_id,
                m.delivery_id,
                m.intent_id,
                m.category,
                m.title,
                m.body,
                m.action_url,
                data(m.data),
                at(m.created_at),
                at(m.seen_at),
                at(m.read_at),
                at(m.archived_at),
            )
            for m in messages
        ]
        inserted = await _INSERT.run(conn, rows)
        keys = [(m.tenant_id, m.delivery_id) for m in messages]
        if inserted == len(rows):
            return set(keys)
        stored = await _message_ids(conn, keys)
        return {k for k, m in zip(keys, messages, strict=True) if stored.get(k) == m.message_id}


async def message_ids_for(
    engine: AsyncEngine, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(tenant, delivery id) -> message id, for deliveries already in the inbox."""
    if not keys:
        return {}
    async with engine.connect() as conn:
        return await _message_ids(conn, keys)


async def _message_ids(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    table = _table()
    found: dict[tuple[str, str], str] = {}
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        query = select(table.c.tenant_id, table.c.delivery_id, table.c.message_id).where(
            tuple_(table.c.tenant_id, table.c.delivery_id).in_(wanted[start : start + LOOKUP_CHUNK])
        )
        for r in await conn.execute(query):
            found[(r.tenant_id, r.delivery_id)] = r.message_id
    return found


async def list_page(
    engine: AsyncEngine,
    tenant_id: str,
    user_id: str,
    limit: int,
    after: Position | None,
    status: Status = Status.ALL,
) -> tuple[list[InboxMessage], Counts]:
    """Up to `limit` + 1 messages with `status` after `after`, newest first (the
    extra one says there is a next page), and the user's unread and unseen counts."""
    table = _table()
    query = (
        select(table)
        .where(*_user(tenant_id, user_id), *_status(status))
        .order_by(table.c.created_at.desc(), table.c.message_id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(
            or_(
                table.c.created_at < after.created_at,
                and_(table.c.created_at == after.created_at, table.c.message_id < after.message_id),
            )
        )
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        messages = [_message(r) for r in rows]
        counts = await _counts(conn, tenant_id, user_id)
    return messages, counts


async def counts(engine: AsyncEngine, tenant_id: str, user_id: str) -> Counts:
    """The user's unread and unseen counts over the messages not archived."""
    async with engine.connect() as conn:
        return await _counts(conn, tenant_id, user_id)


async def apply_mark(
    engine: AsyncEngine, tenant_id: str, user_id: str, mark: Mark, target: Target, now: datetime
) -> tuple[int, Counts]:
    """Move the user's `target` messages into `mark`'s state, in one UPDATE.

    Messages already in that state are left as they are (their first
    timestamp stays). Returns how many changed, and the counts after it."""
    table = _table()
    rule = TRANSITIONS[mark]
    column = table.c[rule.column]
    values: dict[str, Any] = {rule.column: now if rule.sets else None}
    if rule.implies_seen:
        values["seen_at"] = func.coalesce(table.c.seen_at, now)
    stmt = (
        table.update()
        .where(
            *_user(tenant_id, user_id),
            *_target(target),
            column.is_(None) if rule.sets else column.is_not(None),
        )
        .values(values)
    )
    async with write(engine) as conn:
        result = await conn.execute(stmt)
        after = await _counts(conn, tenant_id, user_id)
    return int(result.rowcount), after


async def erase_users(engine: AsyncEngine, users: set[tuple[str, str]]) -> int:
    """GDPR erase: every inbox message of these (tenant, user) pairs goes, archived too."""
    if not users:
        return 0
    table = _table()
    stmt = table.delete().where(tuple_(table.c.tenant_id, table.c.user_id).in_(sorted(users)))
    async with write(engine) as conn:
        result = await conn.execute(stmt)
    return int(result.rowcount)


def _user(tenant_id: str, user_id: str) -> tuple[Any, ...]:
    table = _table()
    return (table.c.tenant_id == tenant_id, table.c.user_id == user_id)


def _in_feed() -> Any:
    """Archived messages are out of the feed and its counts."""
    return _table().c.archived_at.is_(None)


def _status(status: Status) -> tuple[Any, ...]:
    table = _table()
    if status is Status.ARCHIVED:
        return (table.c.archived_at.is_not(None),)
    if status is Status.UNREAD:
        return (_in_feed(), table.c.read_at.is_(None))
    if status is Status.UNSEEN:
        return (_in_feed(), table.c.seen_at.is_(None))
    return (_in_feed(),)


def _target(target: Target) -> tuple[Any, ...]:
    table = _table()
    if target.up_to is not None:
        return (_in_feed(), table.c.created_at <= target.up_to)
    return (table.c.message_id.in_(list(target.message_ids)),)


def counts_query(tenant_id: str, user_id: str) -> Select[Any]:
    """Unread and unseen over the feed, answered from ix_inbox_counts alone."""
    table = _table()
    return select(
        func.coalesce(func.sum(case((table.c.read_at.is_(None), 1), else_=0)), 0),
        func.coalesce(func.sum(case((table.c.seen_at.is_(None), 1), else_=0)), 0),
    ).where(*_user(tenant_id, user_id), _in_feed())


async def _counts(conn: Any, tenant_id: str, user_id: str) -> Counts:
    unread, unseen = (await conn.execute(counts_query(tenant_id, user_id))).one()
    return Counts(int(unread), int(unseen))
