"""ListDeferred's read: a tenant's deferred deliveries, soonest first, by page."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler.paging import Position
from services.scheduler.store import DELIVERIES, ENVELOPES


@dataclass(frozen=True)
class Listed:
    position: Position
    intent_id: str
    user_id: str
    channel: int
    stage: str
    reason: str


async def list_page(
    engine: AsyncEngine, tenant_id: str, intent_id: str, limit: int, after: Position | None
) -> list[Listed]:
    """Up to `limit` + 1 deliveries of the tenant (of one intent, if given),
    soonest first; the extra one says there is a next page."""
    d, e = DELIVERIES.c, ENVELOPES.c
    order = (d.due_at, d.envelope_id, d.delivery_id)
    query = (
        select(*order, d.intent_id, d.user_id, d.channel, e.stage, e.reason)
        .join_from(DELIVERIES, ENVELOPES, d.envelope_id == e.id)
        .where(d.tenant_id == tenant_id)
        .order_by(*order)
        .limit(limit + 1)
    )
    if intent_id:
        query = query.where(d.intent_id == intent_id)
    if after is not None:
        query = query.where(tuple_(*order) > (after.due_at, after.envelope_id, after.delivery_id))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [
            Listed(
                Position(r.due_at, r.envelope_id, r.delivery_id),
                r.intent_id,
                r.user_id,
                r.channel,
                r.stage,
                r.reason,
            )
            for r in rows
        ]
