"""Suppression lists (keyed contact hashes) and quiet-hours policies, per tenant."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from services.eligibility.quiet_hours import QuietPolicy
from shared.db import insert_ignore, is_postgres, table_of, utc_field, write

MAX_PAGE_SIZE = 1000
# Keys per lookup statement (three bind parameters each): well below every
# dialect's limit, so a whole consumer batch is one statement.
LOOKUP_CHUNK = 5000


class SuppressionRow(SQLModel, table=True):
    # The primary key is also the listing order and the lookup index.
    __tablename__ = "suppressions"

    tenant_id: str = Field(primary_key=True, max_length=64)
    channel: int = Field(primary_key=True)
    # HMAC-SHA256 of the normalised contact, hex. The contact is never stored.
    contact_hash: str = Field(primary_key=True, max_length=64)
    reason: int
    detail: str = Field(default="", max_length=500)
    at: datetime = utc_field()


class QuietHoursRow(SQLModel, table=True):
    __tablename__ = "quiet_hours_policies"

    tenant_id: str = Field(primary_key=True, max_length=64)
    enabled: bool = False
    start_minute: int = 0
    end_minute: int = 0
    default_timezone: str = Field(default="", max_length=64)
    updated_at: datetime = utc_field()


TABLES: tuple[type[SQLModel], ...] = (SuppressionRow, QuietHoursRow)

# (tenant, channel, contact hash): one entry of one tenant's list.
Key = tuple[str, int, str]


@dataclass(frozen=True)
class Entry:
    channel: int
    contact_hash: str
    reason: int
    detail: str
    at: datetime


async def add_suppressions(engine: AsyncEngine, tenant_id: str, entries: Sequence[Entry]) -> int:
    """Add the entries not listed yet (a listed one keeps its first reason); returns how many."""
    if not entries:
        return 0
    rows = [
        {
            "tenant_id": tenant_id,
            "channel": e.channel,
            "contact_hash": e.contact_hash,
            "reason": e.reason,
            "detail": e.detail,
            "at": e.at,
        }
        for e in entries
    ]
    table = table_of(SuppressionRow)
    async with write(engine) as conn:
        stmt = insert_ignore(conn, table).returning(table.c.contact_hash)
        result = await conn.execute(stmt, rows)
        return len(result.all())


async def remove_suppressions(
    engine: AsyncEngine,
    tenant_id: str,
    keys: Collection[tuple[int, str]],
    reason: int | None = None,
) -> int:
    """Remove the (channel, contact hash) entries of the tenant's list, only
    those listed for `reason` if one is given (START lifts a STOP, never a
    hard bounce); returns how many."""
    if not keys:
        return 0
    table = table_of(SuppressionRow)
    stmt = table.delete().where(
        table.c.tenant_id == tenant_id,
        tuple_(table.c.channel, table.c.contact_hash).in_(list(keys)),
    )
    if reason is not None:
        stmt = stmt.where(table.c.reason == reason)
    async with write(engine) as conn:
        result = await conn.execute(stmt)
    return int(result.rowcount)


async def find_suppressions(engine: AsyncEngine, keys: Collection[Key]) -> dict[Key, int]:
    """Which keys (of any tenants) are listed, with their reasons: one statement
    per LOOKUP_CHUNK keys, so a consumer batch pays one round trip."""
    found: dict[Key, int] = {}
    wanted = list(set(keys))
    table = table_of(SuppressionRow)
    async with engine.connect() as conn:
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            query = select(
                table.c.tenant_id, table.c.channel, table.c.contact_hash, table.c.reason
            ).where(tuple_(table.c.tenant_id, table.c.channel, table.c.contact_hash).in_(chunk))
            for r in await conn.execute(query):
                found[(r.tenant_id, r.channel, r.contact_hash)] = r.reason
    return found


async def list_suppressions(
    engine: AsyncEngine,
    tenant_id: str,
    channel: int | None,
    limit: int,
    after: tuple[int, str] | None,
) -> list[Entry]:
    """Up to `limit` + 1 entries after `after` in (channel, hash) order (the extra
    one says there is a next page)."""
    table = table_of(SuppressionRow)
    query = (
        select(table)
        .where(table.c.tenant_id == tenant_id)
        .order_by(table.c.channel, table.c.contact_hash)
        .limit(limit + 1)
    )
    if channel is not None:
        query = query.where(table.c.channel == channel)
    if after is not None:
        query = query.where(tuple_(table.c.channel, table.c.contact_hash) > tuple_(*after))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [Entry(r.channel, r.contact_hash, r.reason, r.detail, r.at) for r in rows]


async def set_quiet_hours(
    engine: AsyncEngine, tenant_id: str, policy: QuietPolicy, now: datetime
) -> None:
    row = {
        "tenant_id": tenant_id,
        "enabled": policy.enabled,
        "start_minute": policy.start_minute,
        "end_minute": policy.end_minute,
        "default_timezone": policy.default_timezone,
        "updated_at": now,
    }
    table = table_of(QuietHoursRow)
    async with write(engine) as conn:
        ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
        stmt = ins.values(row).on_conflict_do_update(
            index_elements=[table.c.tenant_id],
            set_={k: ins.excluded[k] for k in row if k != "tenant_id"},
        )
        await conn.execute(stmt)


async def quiet_hours_of(engine: AsyncEngine, tenant_ids: Iterable[str]) -> dict[str, QuietPolicy]:
    """The stored policies of these tenants (tenants without one are left out)."""
    wanted = list(set(tenant_ids))
    if not wanted:
        return {}
    table = table_of(QuietHoursRow)
    query = select(table).where(table.c.tenant_id.in_(wanted))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return {
            r.tenant_id: QuietPolicy(r.enabled, r.start_minute, r.end_minute, r.default_timezone)
            for r in rows
        }
