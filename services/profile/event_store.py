"""Behaviour events: written at once, read by name and time window."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from services.profile.paging import Position
from services.profile.rows import event_proto
from services.profile.store import LOOKUP_CHUNK, BehaviourEventRow
from shared.db import table_of, write

E = BehaviourEventRow


class EventStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def record(
        self, tenant_id: str, events: Sequence[tuple[str, profile_pb2.BehaviourEvent]]
    ) -> int:
        """Stores (user id, event) pairs in one transaction; how many."""
        rows = [
            {
                "tenant_id": tenant_id,
                "user_id": user_id,
                "name": e.name,
                "occurred_at": e.occurred_at.ToDatetime(tzinfo=UTC),
                "properties": dict(e.properties),
            }
            for user_id, e in events
        ]
        if rows:
            async with write(self.engine) as conn:
                await conn.execute(table_of(E).insert(), rows)
        return len(rows)

    async def page(
        self,
        tenant_id: str,
        user_id: str,
        *,
        name: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        after: Position | None = None,
        limit: int = 50,
    ) -> tuple[list[profile_pb2.BehaviourEvent], Position | None]:
        """One page of a user's events, newest first, and where the next starts."""
        stmt = select(E).where(col(E.tenant_id) == tenant_id, col(E.user_id) == user_id)
        if name:
            stmt = stmt.where(col(E.name) == name)
        if since is not None:
            stmt = stmt.where(col(E.occurred_at) >= since)
        if until is not None:
            stmt = stmt.where(col(E.occurred_at) < until)
        if after is not None:
            stmt = stmt.where(
                or_(
                    col(E.occurred_at) < after.at,
                    and_(col(E.occurred_at) == after.at, col(E.id) < after.row_id),
                )
            )
        stmt = stmt.order_by(col(E.occurred_at).desc(), col(E.id).desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        last = Position(rows[-1].occurred_at, rows[-1].id) if more else None
        return [event_proto(r) for r in rows], last

    async def recent(
        self, tenant_id: str, user_ids: Sequence[str], names: Collection[str], since: datetime
    ) -> dict[str, list[profile_pb2.BehaviourEvent]]:
        """These users' events of these names since `since`, newest first, by
        user: one query per LOOKUP_CHUNK users."""
        found: dict[str, list[profile_pb2.BehaviourEvent]] = defaultdict(list)
        if not user_ids or not names:
            return found
        async with self.engine.connect() as conn:
            for start in range(0, len(user_ids), LOOKUP_CHUNK):
                chunk = list(user_ids[start : start + LOOKUP_CHUNK])
                stmt = (
                    select(E)
                    .where(
                        col(E.tenant_id) == tenant_id,
                        col(E.user_id).in_(chunk),
                        col(E.name).in_(sorted(names)),
                        col(E.occurred_at) >= since,
                    )
                    .order_by(col(E.occurred_at).desc(), col(E.id).desc())
                )
                for row in (await conn.execute(stmt)).all():
                    found[row.user_id].append(event_proto(row))
        return found
