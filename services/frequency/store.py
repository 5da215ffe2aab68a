"""Cap policies and reservations: the tables and the simple queries on them.

The reservation transaction itself (count and take slots atomically) is in
`ledger.py`. A reservation is one row per delivery that took a slot; which
policies it counts under is worked out from its channel, category and kind,
so a policy added later counts the sends made before it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ARRAY, BigInteger, Index, bindparam, delete, func, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel

from services.frequency.caps import DAY_REACH, Policy
from shared import metrics
from shared.clock import utcnow
from shared.db import is_postgres, table_of, utc_field, write

# Keys per statement: far below every dialect's bind-parameter limit.
CHUNK = 2000
# Kept past the longest window before pruning, for clocks that disagree.
PRUNE_SLACK = timedelta(days=1)

T = TypeVar("T")

LOCK_USERS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) AS k").bindparams(
    bindparam("keys", type_=ARRAY(BigInteger))
)


class CapPolicyRow(SQLModel, table=True):
    __tablename__ = "frequency_cap_policies"

    tenant_id: str = Field(primary_key=True, max_length=64)
    policy_id: str = Field(primary_key=True, max_length=64)
    channel: int = 0
    category: str = Field(default="", max_length=128)
    kind: int = 0
    max_sends: int = 0
    window_kind: int = 0
    window_ms: int = Field(default=0, sa_type=BigInteger)
    min_gap_ms: int = Field(default=0, sa_type=BigInteger)
    updated_at: datetime = utc_field()


class ReservationRow(SQLModel, table=True):
    """A slot taken by one delivery; unique per delivery, so a redelivered
    message never takes a second one."""

    __tablename__ = "frequency_reservations"
    __table_args__ = (
        # Counting: one recipient's recent sends.
        Index("ix_frequency_reservations_user", "tenant_id", "user_id", "reserved_at"),
        Index("ix_frequency_reservations_at", "reserved_at"),
    )

    tenant_id: str = Field(primary_key=True, max_length=64)
    delivery_id: str = Field(primary_key=True, max_length=128)
    user_id: str = Field(max_length=256)
    channel: int = 0
    category: str = Field(default="", max_length=128)
    kind: int = 0
    reserved_at: datetime = utc_field()


TABLES: tuple[type[SQLModel], ...] = (CapPolicyRow, ReservationRow)


def chunks(items: Sequence[T], size: int = CHUNK) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def lock_key(tenant_id: str, user_id: str) -> int:
    """A stable signed 64-bit key per recipient (a collision only serialises two)."""
    digest = hashlib.blake2b(f"{tenant_id}\x00{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_users(conn: AsyncConnection, users: Iterable[tuple[str, str]]) -> None:
    """On PostgreSQL, hold (tenant, user) locks until the transaction ends.

    Taken in key order, so two transactions locking overlapping users cannot
    deadlock. SQLite needs none: `shared.db.write` admits one writer."""
    if is_postgres(conn):
        await conn.execute(LOCK_USERS, {"keys": sorted({lock_key(t, u) for t, u in users})})


def _ms(span: timedelta | None) -> int:
    return int(span.total_seconds() * 1000) if span else 0


def _span(ms: int) -> timedelta | None:
    return timedelta(milliseconds=ms) if ms else None


def to_policy(row: Any) -> Policy:
    return Policy(
        policy_id=row.policy_id,
        limit=row.max_sends,
        window_kind=row.window_kind,
        window=_span(row.window_ms),
        min_gap=_span(row.min_gap_ms),
        channel=row.channel,
        category=row.category,
        kind=row.kind,
    )


async def put_policy(engine: AsyncEngine, tenant_id: str, policy: Policy) -> None:
    """Create the policy, or replace the one with its id."""
    row = {
        "tenant_id": tenant_id,
        "policy_id": policy.policy_id,
        "channel": policy.channel,
        "category": policy.category,
        "kind": policy.kind,
        "max_sends": policy.limit,
        "window_kind": policy.window_kind,
        "window_ms": _ms(policy.window),
        "min_gap_ms": _ms(policy.min_gap),
        "updated_at": utcnow(),
    }
    table = table_of(CapPolicyRow)
    async with write(engine) as conn:
        ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
        stmt = ins.values(row).on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.policy_id],
            set_={k: ins.excluded[k] for k in row if k not in ("tenant_id", "policy_id")},
        )
        await conn.execute(stmt)


async def policies_of(conn: AsyncConnection, tenants: Iterable[str]) -> dict[str, list[Policy]]:
    """Every policy of the given tenants, by tenant, in policy id order."""
    table = table_of(CapPolicyRow)
    wanted = sorted(set(tenants))
    query = select(table).where(table.c.tenant_id.in_(wanted)).order_by(table.c.policy_id)
    found: dict[str, list[Policy]] = {t: [] for t in wanted}
    for row in await conn.execute(query):
        found[row.tenant_id].append(to_policy(row))
    return found


async def list_policies(engine: AsyncEngine, tenant_id: str) -> list[Policy]:
    async with engine.connect() as conn:
        return (await policies_of(conn, [tenant_id]))[tenant_id]


async def delete_policy(engine: AsyncEngine, tenant_id: str, policy_id: str) -> bool:
    table = table_of(CapPolicyRow)
    stmt = delete(table).where(table.c.tenant_id == tenant_id, table.c.policy_id == policy_id)
    async with write(engine) as conn:
        result = await conn.execute(stmt)
    return bool(result.rowcount)


async def release(engine: AsyncEngine, keys: Iterable[tuple[str, str]]) -> int:
    """Give back the slots of (tenant, delivery id) pairs; how many were held."""
    table = table_of(ReservationRow)
    released = await _delete_by(engine, tuple_(table.c.tenant_id, table.c.delivery_id), keys)
    metrics.CAP_RESERVATIONS.labels("released").inc(released)
    return released


async def erase_users(engine: AsyncEngine, keys: Iterable[tuple[str, str]]) -> int:
    """Forget every reservation of (tenant, user id) pairs (GDPR erase)."""
    table = table_of(ReservationRow)
    column = tuple_(table.c.tenant_id, table.c.user_id)
    # Locked like a reservation, so one racing with the erase is deleted too.
    return await _delete_by(engine, column, keys, lock=True)


async def _delete_by(
    engine: AsyncEngine, column: Any, keys: Iterable[tuple[str, str]], *, lock: bool = False
) -> int:
    wanted = sorted(set(keys))
    if not wanted:
        return 0
    table = table_of(ReservationRow)
    deleted = 0
    async with write(engine) as conn:
        if lock:
            await lock_users(conn, wanted)
        for part in chunks(wanted):
            result = await conn.execute(delete(table).where(column.in_(list(part))))
            deleted += result.rowcount
    return deleted


async def prune(engine: AsyncEngine, now: datetime) -> int:
    """Delete reservations older than any policy of any tenant can still count."""
    policies = table_of(CapPolicyRow)
    table = table_of(ReservationRow)
    async with write(engine) as conn:
        query = select(func.max(policies.c.window_ms), func.max(policies.c.min_gap_ms))
        window_ms, gap_ms = (await conn.execute(query)).one()
        longest = max(DAY_REACH, timedelta(milliseconds=max(window_ms or 0, gap_ms or 0)))
        cutoff = now - longest - PRUNE_SLACK
        result = await conn.execute(delete(table).where(table.c.reserved_at < cutoff))
    return int(result.rowcount)
