"""The scheduler's tables and queries: deferred envelopes, the deliveries they
hold, and recently cancelled intents.

Rows are claimed and deleted in the transaction that publishes them, so a
claim is released by a crash (the transaction rolls back) and held against
other replicas while the broker confirms (PostgreSQL: FOR UPDATE SKIP LOCKED;
SQLite serves one process, whose writers take turns in `db.write`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, bindparam, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Column, Field, SQLModel

from services.scheduler.deferrals import Held, without_users
from shared.clock import utcnow
from shared.db import insert_ignore, is_postgres, table_of, utc_field, write

Key = tuple[str, str]  # (tenant_id, intent_id) or (tenant_id, user_id)


class DeferredEnvelope(SQLModel, table=True):
    __tablename__ = "deferred_envelopes"
    __table_args__ = (
        Index("ix_deferred_envelopes_due", "due_at", "id"),
        Index("ix_deferred_envelopes_intent", "tenant_id", "intent_id"),
        # Never reuse an id: page tokens and claims name rows by id.
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(max_length=64, unique=True)
    tenant_id: str = Field(max_length=64)
    intent_id: str = Field(max_length=64)
    due_at: datetime = utc_field()
    stage: str = Field(max_length=64)
    reason: str = Field(max_length=64)
    size: int
    stored_at: datetime = utc_field()
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class DeferredDelivery(SQLModel, table=True):
    __tablename__ = "deferred_deliveries"
    __table_args__ = (
        Index("ix_deferred_deliveries_list", "tenant_id", "due_at", "envelope_id", "delivery_id"),
        Index("ix_deferred_deliveries_intent", "tenant_id", "intent_id", "due_at"),
        Index("ix_deferred_deliveries_user", "tenant_id", "user_id"),
    )
    envelope_id: int = Field(foreign_key="deferred_envelopes.id", primary_key=True)
    delivery_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64)
    intent_id: str = Field(max_length=64)
    user_id: str = Field(max_length=256)
    channel: int
    due_at: datetime = utc_field()


class CancelledIntent(SQLModel, table=True):
    __tablename__ = "scheduler_cancelled_intents"
    tenant_id: str = Field(primary_key=True, max_length=64)
    intent_id: str = Field(primary_key=True, max_length=64)
    cancelled_at: datetime = utc_field(index=True)


TABLES: tuple[type[SQLModel], ...] = (DeferredEnvelope, DeferredDelivery, CancelledIntent)
ENVELOPES, DELIVERIES, CANCELLED = (table_of(m) for m in TABLES)


@dataclass(frozen=True)
class Kept:
    stored: list[Held]
    # Deferrals of intents cancelled before they arrived: not stored.
    refused: list[Held]


@dataclass(frozen=True)
class Row:
    """A stored envelope, claimed or taken."""

    id: int
    due_at: datetime
    stage: str
    size: int
    body: bytes


async def keep(engine: AsyncEngine, batch: Sequence[Held]) -> Kept:
    """Store a batch in one transaction; a redelivered envelope is stored once."""
    keys = list({(h.tenant_id, h.intent_id) for h in batch})
    async with write(engine) as conn:
        c = CANCELLED.c
        found = await conn.execute(
            select(c.tenant_id, c.intent_id).where(tuple_(c.tenant_id, c.intent_id).in_(keys))
        )
        cancelled = {(r.tenant_id, r.intent_id) for r in found}
        stored = [h for h in batch if (h.tenant_id, h.intent_id) not in cancelled]
        refused = [h for h in batch if (h.tenant_id, h.intent_id) in cancelled]
        if stored:
            await _insert(conn, stored)
    return Kept(stored, refused)


async def _insert(conn: AsyncConnection, batch: list[Held]) -> None:
    now = utcnow()
    rows = [
        {
            "digest": h.digest,
            "tenant_id": h.tenant_id,
            "intent_id": h.intent_id,
            "due_at": h.due_at,
            "stage": h.stage,
            "reason": h.reason,
            "size": len(h.deliveries),
            "stored_at": now,
            "body": h.body,
        }
        for h in batch
    ]
    stmt = insert_ignore(conn, ENVELOPES).returning(ENVELOPES.c.id, ENVELOPES.c.digest)
    ids = {r.digest: r.id for r in await conn.execute(stmt, rows)}
    children = [
        {
            "envelope_id": ids[h.digest],
            "delivery_id": d.delivery_id,
            "tenant_id": h.tenant_id,
            "intent_id": h.intent_id,
            "user_id": d.user_id,
            "channel": d.channel,
            "due_at": h.due_at,
        }
        for h in batch
        if h.digest in ids
        for d in h.deliveries
    ]
    if children:
        await conn.execute(insert_ignore(conn, DELIVERIES), children)


def claim_due(
    engine: AsyncEngine, now: datetime, limit: int
) -> AbstractAsyncContextManager[list[Row]]:
    """Up to `limit` envelopes due by `now`, soonest first, deleted when the
    block ends without an error (kept, and unclaimed, if it raises). Skips
    rows another replica has claimed."""
    e = ENVELOPES.c
    return _take(engine, e.due_at <= now, (e.due_at, e.id), limit, skip_locked=True)


def take_intents(
    engine: AsyncEngine, keys: Collection[Key], limit: int
) -> AbstractAsyncContextManager[list[Row]]:
    """Up to `limit` envelopes of these intents, deleted when the block ends
    without an error. Waits for rows another replica is dispatching."""
    e = ENVELOPES.c
    of_intents = tuple_(e.tenant_id, e.intent_id).in_(list(keys))
    return _take(engine, of_intents, (e.id,), limit, skip_locked=False)


@asynccontextmanager
async def _take(
    engine: AsyncEngine,
    where: ColumnElement[bool],
    order: tuple[ColumnElement[Any], ...],
    limit: int,
    *,
    skip_locked: bool,
) -> AsyncIterator[list[Row]]:
    e = ENVELOPES.c
    query = select(e.id, e.due_at, e.stage, e.size, e.body).where(where)
    query = query.order_by(*order).limit(limit)
    async with write(engine) as conn:
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=skip_locked)
        rows = [Row(**r._mapping) for r in await conn.execute(query)]
        yield rows
        await _delete(conn, [r.id for r in rows])


async def _delete(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.envelope_id.in_(ids)))
        await conn.execute(delete(ENVELOPES).where(ENVELOPES.c.id.in_(ids)))


async def remember_cancelled(
    engine: AsyncEngine, keys: Collection[Key], forget_before: datetime
) -> None:
    """Note these intents as cancelled; forget those cancelled before `forget_before`."""
    now = utcnow()
    rows = [{"tenant_id": t, "intent_id": i, "cancelled_at": now} for t, i in keys]
    async with write(engine) as conn:
        await conn.execute(insert_ignore(conn, CANCELLED), rows)
        await conn.execute(delete(CANCELLED).where(CANCELLED.c.cancelled_at < forget_before))


async def erase_users(engine: AsyncEngine, users: Collection[Key]) -> int:
    """Remove these users from every held envelope; returns deliveries removed."""
    d, e = DELIVERIES.c, ENVELOPES.c
    of_users = tuple_(d.tenant_id, d.user_id).in_(list(users))
    async with write(engine) as conn:
        found = await conn.execute(select(d.envelope_id).where(of_users).distinct())
        query = select(e.id, e.size, e.body).where(e.id.in_([r.envelope_id for r in found]))
        if is_postgres(conn):
            query = query.order_by(e.id).with_for_update()
        held = {r.id: r for r in await conn.execute(query)}
        if not held:
            return 0
        # What is removed is read under the lock: a concurrent erase counts nothing twice.
        remove = delete(DELIVERIES).where(of_users, d.envelope_id.in_(list(held)))
        removed = (await conn.execute(remove.returning(d.envelope_id, d.user_id))).all()
        erased: dict[int, set[str]] = {}
        for r in removed:
            erased.setdefault(r.envelope_id, set()).add(r.user_id)
        gone = Counter(r.envelope_id for r in removed)
        left = {i: without_users(held[i].body, names) for i, names in erased.items()}
        rewrite = [
            {"b_id": i, "b_body": body, "b_size": held[i].size - gone[i]}
            for i, body in left.items()
            if body is not None
        ]
        if rewrite:
            change = update(ENVELOPES).where(e.id == bindparam("b_id"))
            await conn.execute(
                change.values(body=bindparam("b_body"), size=bindparam("b_size")), rewrite
            )
        await _delete(conn, [i for i, body in left.items() if body is None])
        return len(removed)


async def pending_deliveries(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(DELIVERIES))).scalar_one())


async def next_due_at(engine: AsyncEngine) -> datetime | None:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.min(ENVELOPES.c.due_at)))).scalar_one()
