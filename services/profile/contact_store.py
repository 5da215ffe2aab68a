"""Profiles found by a contact point, and consent recorded for them: what an
SMS STOP or START (which names only a number) needs. Indexed per tenant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from services.profile.store import LOOKUP_CHUNK, ConsentRow, ProfileRow
from shared.db import table_of, write

# Declared on ProfileRow too; made here for databases created before it was.
PHONE_INDEX_DDL = "CREATE INDEX IF NOT EXISTS ix_profiles_phone ON profiles (tenant_id, phone)"


@dataclass(frozen=True)
class Statement:
    """One consent statement for one user, on a whole channel (category "")."""

    user_id: str
    channel: int
    granted: bool
    source: str
    at: datetime


class ContactStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ensure_index(self) -> None:
        async with write(self.engine) as conn:
            await conn.execute(text(PHONE_INDEX_DDL))

    async def owners_of_phones(
        self, tenant_id: str, phones: Collection[str]
    ) -> dict[str, list[str]]:
        """phone -> the users of the tenant whose profile has it (E.164, exact)."""
        wanted = sorted(set(phones))
        owners: dict[str, list[str]] = defaultdict(list)
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), LOOKUP_CHUNK):
                stmt = (
                    select(col(ProfileRow.phone), col(ProfileRow.user_id))
                    .where(
                        col(ProfileRow.tenant_id) == tenant_id,
                        col(ProfileRow.phone).in_(wanted[start : start + LOOKUP_CHUNK]),
                    )
                    .order_by(col(ProfileRow.user_id))
                )
                for phone, user_id in (await conn.execute(stmt)).all():
                    owners[phone].append(user_id)
        return dict(owners)

    async def record(self, tenant_id: str, statements: Sequence[Statement], now: datetime) -> int:
        """Appends the statements not recorded yet (same user, channel, source,
        answer and time: a redelivered message); returns how many were new."""
        if not statements:
            return 0
        users = sorted({s.user_id for s in statements})
        table = table_of(ConsentRow)
        query = select(
            table.c.user_id, table.c.channel, table.c.granted, table.c.source, table.c.at
        ).where(
            table.c.tenant_id == tenant_id,
            table.c.user_id.in_(users),
            table.c.category == "",
            table.c.source.in_(sorted({s.source for s in statements})),
        )
        async with write(self.engine) as conn:
            seen = {tuple(r) for r in (await conn.execute(query)).all()}
            rows = [
                _row(tenant_id, s, now)
                for s in dict.fromkeys(statements)
                if (s.user_id, s.channel, s.granted, s.source, s.at) not in seen
            ]
            if rows:
                await conn.execute(table.insert(), rows)
        return len(rows)


def _row(tenant_id: str, s: Statement, now: datetime) -> dict[str, object]:
    return {
        "tenant_id": tenant_id,
        "user_id": s.user_id,
        "channel": s.channel,
        "category": "",
        "granted": s.granted,
        "source": s.source,
        "at": s.at,
        "recorded_at": now,
    }
