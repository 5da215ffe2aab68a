"""Consent history: statements are appended, never changed (erase aside)."""

from __future__ import annotations

from datetime import datetime

from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from services.profile.paging import Position
from services.profile.rows import consent_proto, consent_row
from services.profile.store import ConsentRow, ProfileRow, with_consents
from shared.db import table_of, write

C = ConsentRow


class ConsentStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(
        self, tenant_id: str, user_id: str, consent: profile_pb2.Consent, now: datetime
    ) -> profile_pb2.Profile | None:
        """Appends a statement; the profile as it is now, or None if there is none."""
        async with write(self.engine) as conn:
            stmt = select(ProfileRow).where(
                col(ProfileRow.tenant_id) == tenant_id, col(ProfileRow.user_id) == user_id
            )
            row = (await conn.execute(stmt)).one_or_none()
            if row is None:
                return None
            await conn.execute(
                table_of(C).insert(), [consent_row(tenant_id, user_id, consent, now)]
            )
            [profile] = await with_consents(conn, tenant_id, [row])
        return profile

    async def history(
        self, tenant_id: str, user_id: str, *, after: Position | None = None, limit: int = 50
    ) -> tuple[list[profile_pb2.Consent], Position | None]:
        """One page of every statement, newest `at` first, and where the next starts."""
        stmt = select(C).where(col(C.tenant_id) == tenant_id, col(C.user_id) == user_id)
        if after is not None:
            stmt = stmt.where(
                or_(col(C.at) < after.at, and_(col(C.at) == after.at, col(C.id) < after.row_id))
            )
        stmt = stmt.order_by(col(C.at).desc(), col(C.id).desc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        last = Position(rows[-1].at, rows[-1].id) if more else None
        return [consent_proto(r) for r in rows], last
