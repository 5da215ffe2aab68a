"""The reservation transaction: count a recipient's sends and take slots, atomically.

Two replicas racing for a recipient's last slot must not both get it. On
PostgreSQL the transaction first takes a transaction-scoped advisory lock per
(tenant, user), in a fixed order so two batches cannot deadlock; whoever
comes second counts after the first has committed (READ COMMITTED reads a
fresh snapshot per statement). On SQLite the process's single writer
(`shared.db.write`) serialises the same steps.

A whole consumed batch is one transaction: one query for policies, one for
the recipients' reservations, one insert (per CHUNK keys).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.frequency import caps, choice
from services.frequency.caps import Policy, Send
from services.frequency.choice import Outcome, Request, Verdict
from services.frequency.store import ReservationRow, chunks, lock_users, policies_of
from shared import metrics
from shared.db import insert_ignore, table_of, write

UserKey = tuple[str, str]


@dataclass(frozen=True)
class Usage:
    policy: Policy
    used: int
    # Unset: a slot is free now.
    next_slot: datetime | None


async def reserve(
    engine: AsyncEngine, requests: Sequence[Request], *, dry_run: bool = False
) -> list[list[Verdict]]:
    """Each request's verdicts (the asks tried, in order), slots taken unless `dry_run`."""
    if not requests:
        return []
    async with engine.connect() as conn:
        policies = await policies_of(conn, {r.tenant_id for r in requests})
    counted = [r for r in requests if _is_counted(policies[r.tenant_id], r)]
    if not counted:
        # Nothing to count against: no writer lock, no row (the common case).
        return _count([_decide(policies, {}, {}, r) for r in requests], dry_run)
    async with _transaction(engine, dry_run) as conn:
        if not dry_run:
            await lock_users(conn, [(r.tenant_id, r.user_id) for r in counted])
        sends, held = await _reservations(conn, policies, counted)
        verdicts = [_decide(policies, sends, held, r) for r in requests]
        if not dry_run:
            await _insert(conn, requests, verdicts)
    return _count(verdicts, dry_run)


async def usage(
    engine: AsyncEngine, tenant_id: str, user_id: str, at: datetime, zone: tzinfo
) -> list[Usage]:
    """What each of the tenant's policies has counted for the user at `at`."""
    request = Request(tenant_id, user_id, at, zone, ())
    async with engine.connect() as conn:
        policies = await policies_of(conn, [tenant_id])
        if not policies[tenant_id]:
            return []
        sends, _ = await _reservations(conn, policies, [request])
    mine = sends.get((tenant_id, user_id), [])
    found = []
    for policy in policies[tenant_id]:
        times = caps.counted(policy, mine)
        free = caps.admits(policy, times, at, zone)
        slot = None if free else caps.next_slot(policy, times, at, zone)
        found.append(Usage(policy, caps.used(policy, times, at, zone), slot))
    return found


def _is_counted(policies: Sequence[Policy], request: Request) -> bool:
    return any(p.matches(a.channel, a.category, a.kind) for p in policies for a in request.asks)


def _decide(
    policies: dict[str, list[Policy]],
    sends: dict[UserKey, list[Send]],
    held: dict[str, set[str]],
    request: Request,
) -> list[Verdict]:
    mine = sends.setdefault((request.tenant_id, request.user_id), [])
    return choice.decide(
        policies[request.tenant_id], mine, held.setdefault(request.tenant_id, set()), request
    )


@asynccontextmanager
async def _transaction(engine: AsyncEngine, dry_run: bool) -> AsyncIterator[AsyncConnection]:
    if dry_run:
        async with engine.connect() as conn:
            yield conn
        return
    async with write(engine) as conn:
        yield conn


async def _reservations(
    conn: AsyncConnection, policies: dict[str, list[Policy]], requests: Sequence[Request]
) -> tuple[dict[UserKey, list[Send]], dict[str, set[str]]]:
    """The recipients' sends that can still count, and which of the asked
    deliveries already hold a slot (by tenant)."""
    table = table_of(ReservationRow)
    sends: dict[UserKey, list[Send]] = defaultdict(list)
    held: dict[str, set[str]] = defaultdict(set)
    by_tenant: dict[str, list[Request]] = defaultdict(list)
    for r in requests:
        by_tenant[r.tenant_id].append(r)
    for tenant, mine in by_tenant.items():
        reach = max(p.horizon for p in policies[tenant])
        since = min(r.at for r in mine) - reach
        users = sorted({r.user_id for r in mine})
        for part in chunks(users):
            members = set(part)
            asked = sorted({a.delivery_id for r in mine if r.user_id in members for a in r.asks})
            query = select(table).where(
                table.c.tenant_id == tenant,
                table.c.user_id.in_(list(part)),
                or_(table.c.reserved_at >= since, table.c.delivery_id.in_(asked)),
            )
            for row in await conn.execute(query):
                sends[(tenant, row.user_id)].append(
                    Send(row.reserved_at, row.channel, row.category, row.kind)
                )
                held[tenant].add(row.delivery_id)
    return sends, held


async def _insert(
    conn: AsyncConnection, requests: Sequence[Request], verdicts: Sequence[list[Verdict]]
) -> None:
    rows = [
        {
            "tenant_id": request.tenant_id,
            "delivery_id": ask.delivery_id,
            "user_id": request.user_id,
            "channel": ask.channel,
            "category": ask.category,
            "kind": caps.normal_kind(ask.kind),
            "reserved_at": request.at,
        }
        for request, tried in zip(requests, verdicts, strict=True)
        for ask, verdict in zip(request.asks, tried, strict=False)
        if verdict.outcome is Outcome.RESERVED
    ]
    for part in chunks(rows):
        await conn.execute(insert_ignore(conn, ReservationRow), list(part))


def _count(verdicts: list[list[Verdict]], dry_run: bool) -> list[list[Verdict]]:
    if not dry_run:
        for tried in verdicts:
            for v in tried:
                label = "granted" if v.outcome in (Outcome.RESERVED, Outcome.HELD) else v.outcome
                metrics.CAP_RESERVATIONS.labels(str(label)).inc()
    return verdicts
