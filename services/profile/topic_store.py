"""Topic membership: the explicit subscriber lists an intent can target."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from services.profile.store import ProfileRow, TopicMemberRow
from shared.db import insert_ignore, table_of, write

M = TopicMemberRow
# Rows per insert statement: 3 bound values a row, under every dialect's limit.
INSERT_CHUNK = 2000
DELETE_CHUNK = 5000


class TopicStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def subscribe(self, tenant_id: str, topic: str, user_ids: Sequence[str]) -> int:
        """Adds the users to the topic in one transaction; how many were new."""
        users = list(dict.fromkeys(user_ids))
        table = table_of(M)
        added = 0
        async with write(self.engine) as conn:
            for start in range(0, len(users), INSERT_CHUNK):
                rows = [
                    {"tenant_id": tenant_id, "topic": topic, "user_id": u}
                    for u in users[start : start + INSERT_CHUNK]
                ]
                stmt = insert_ignore(conn, table).values(rows).returning(table.c.user_id)
                added += len((await conn.execute(stmt)).all())
        return added

    async def unsubscribe(self, tenant_id: str, topic: str, user_ids: Sequence[str]) -> int:
        """Removes the users from the topic in one transaction; how many were in it."""
        users = list(dict.fromkeys(user_ids))
        removed = 0
        async with write(self.engine) as conn:
            for start in range(0, len(users), DELETE_CHUNK):
                result = await conn.execute(
                    delete(M).where(
                        col(M.tenant_id) == tenant_id,
                        col(M.topic) == topic,
                        col(M.user_id).in_(users[start : start + DELETE_CHUNK]),
                    )
                )
                removed += result.rowcount
        return removed

    async def count_recipients(self, tenant_id: str, topic: str) -> int:
        """Members that have a profile: those a topic intent reaches."""
        stmt = (
            select(func.count())
            .select_from(M)
            .join(
                ProfileRow,
                (col(ProfileRow.tenant_id) == col(M.tenant_id))
                & (col(ProfileRow.user_id) == col(M.user_id)),
            )
            .where(col(M.tenant_id) == tenant_id, col(M.topic) == topic)
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def topics_of(self, tenant_id: str, user_id: str) -> list[str]:
        stmt = (
            select(col(M.topic))
            .where(col(M.tenant_id) == tenant_id, col(M.user_id) == user_id)
            .order_by(col(M.topic))
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(stmt)).scalars())
