"""Profiles, their consent history and topic memberships, per tenant.

Behaviour events are in event_store.py, topic membership writes in
topic_store.py; the tables of all three are declared here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import JSON, Column, Index, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel, col

from services.profile.consents import latest_per_pair
from services.profile.rows import consent_proto, consent_row, to_proto, to_row
from shared.clock import to_timestamp
from shared.db import is_postgres, table_of, utc_field, write


class ProfileRow(SQLModel, table=True):
    __tablename__ = "profiles"
    # SMS STOP/START name only a number: its owners are found by it (contact_store.py).
    __table_args__ = (Index("ix_profiles_phone", "tenant_id", "phone"),)
    tenant_id: str = Field(primary_key=True)
    user_id: str = Field(primary_key=True)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    locale: str = ""
    timezone: str = ""
    email: str = ""
    phone: str = ""
    webpush: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    quiet_hours: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )
    updated_at: datetime = utc_field()


class ConsentRow(SQLModel, table=True):
    """One consent statement. Rows are only ever inserted (and erased)."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_user", "tenant_id", "user_id", "at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    user_id: str
    channel: int
    category: str = ""
    granted: bool
    source: str
    at: datetime = utc_field()
    recorded_at: datetime = utc_field()


class TopicMemberRow(SQLModel, table=True):
    __tablename__ = "topic_members"
    __table_args__ = (Index("ix_topic_members_user", "tenant_id", "user_id"),)
    tenant_id: str = Field(primary_key=True)
    topic: str = Field(primary_key=True)
    user_id: str = Field(primary_key=True)


class BehaviourEventRow(SQLModel, table=True):
    __tablename__ = "behaviour_events"
    __table_args__ = (
        # Rules and segments: these users' events of these names since then.
        Index("ix_events_lookup", "tenant_id", "user_id", "name", "occurred_at"),
        # ListEvents without a name: a user's events newest first.
        Index("ix_events_user_time", "tenant_id", "user_id", "occurred_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    user_id: str
    name: str
    occurred_at: datetime = utc_field()
    properties: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# Every table holds rows of one user each: an erase deletes from all of them.
TABLES = (ProfileRow, ConsentRow, TopicMemberRow, BehaviourEventRow)

# Ids per lookup statement: well below every dialect's bind-parameter limit.
LOOKUP_CHUNK = 5000


async def current_consents(
    conn: AsyncConnection, tenant_id: str, user_ids: Sequence[str]
) -> dict[str, list[profile_pb2.Consent]]:
    """The consent in force per pair for each user that has any: one query
    per LOOKUP_CHUNK users."""
    history: dict[str, list[Any]] = defaultdict(list)
    c = table_of(ConsentRow).c
    for start in range(0, len(user_ids), LOOKUP_CHUNK):
        chunk = list(user_ids[start : start + LOOKUP_CHUNK])
        stmt = (
            select(c.user_id, c.channel, c.category, c.granted, c.source, c.at)
            .where(c.tenant_id == tenant_id, c.user_id.in_(chunk))
            .order_by(c.id)
        )
        for row in (await conn.execute(stmt)).all():
            history[row.user_id].append(row)
    # Only the statements in force become protos.
    return {
        user: [consent_proto(r) for r in latest_per_pair(rows, _row_at)]
        for user, rows in history.items()
    }


def _row_at(row: Any) -> datetime:
    return row.at


async def with_consents(
    conn: AsyncConnection, tenant_id: str, rows: Sequence[Any]
) -> list[profile_pb2.Profile]:
    """Profile rows as protos, with their consents (one query for all)."""
    consents = await current_consents(conn, tenant_id, [r.user_id for r in rows])
    return [to_proto(r, consents.get(r.user_id, ())) for r in rows]


def _stamped(consent: profile_pb2.Consent, now: datetime) -> profile_pb2.Consent:
    """The statement, dated `now` if it has no date of its own."""
    if consent.HasField("at"):
        return consent
    copy = profile_pb2.Consent()
    copy.CopyFrom(consent)
    copy.at.CopyFrom(to_timestamp(now))
    return copy


def _of(model: type[SQLModel], tenant_id: str, user_id: str) -> Any:
    return (col(model.tenant_id) == tenant_id) & (col(model.user_id) == user_id)  # type: ignore[attr-defined]


class ProfileStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def upsert(
        self, tenant_id: str, profile: profile_pb2.Profile, now: datetime
    ) -> profile_pb2.Profile:
        """Creates or replaces the profile; its consents stay as they are."""
        row = to_row(tenant_id, profile, now)
        table = table_of(ProfileRow)
        async with write(self.engine) as conn:
            ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
            stmt = ins.values(row).on_conflict_do_update(
                index_elements=[table.c.tenant_id, table.c.user_id],
                set_={k: ins.excluded[k] for k in row if k not in ("tenant_id", "user_id")},
            )
            await conn.execute(stmt)
            consents = await current_consents(conn, tenant_id, [profile.user_id])
        return to_proto(ProfileRow.model_validate(row), consents.get(profile.user_id, ()))

    async def upsert_many(
        self, tenant_id: str, profiles: Sequence[profile_pb2.Profile], now: datetime
    ) -> tuple[int, int]:
        """A bulk import in one transaction: each profile created or replaced,
        its `consents` appended to its history (`at` unset: now). User ids
        must not repeat (PostgreSQL updates a row once per statement).
        Returns (profiles, consents) written."""
        rows = [to_row(tenant_id, p, now) for p in profiles]
        consents = [
            consent_row(tenant_id, p.user_id, c, now)
            for p in profiles
            for c in (_stamped(c, now) for c in p.consents)
        ]
        if not rows:
            return 0, 0
        table = table_of(ProfileRow)
        async with write(self.engine) as conn:
            ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
            stmt = ins.on_conflict_do_update(
                index_elements=[table.c.tenant_id, table.c.user_id],
                set_={k: ins.excluded[k] for k in rows[0] if k not in ("tenant_id", "user_id")},
            )
            # executemany: SQLAlchemy sends the rows as few multi-row statements.
            await conn.execute(stmt, rows)
            if consents:
                await conn.execute(table_of(ConsentRow).insert(), consents)
        return len(rows), len(consents)

    async def get_many(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> dict[str, profile_pb2.Profile]:
        """The profiles that exist among `user_ids`: two queries per LOOKUP_CHUNK ids.

        A batch of envelopes can name far more recipients than one statement
        may bind (PostgreSQL stops at 32,767 parameters), so ids are chunked.
        """
        found: dict[str, profile_pb2.Profile] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(user_ids), LOOKUP_CHUNK):
                chunk = list(user_ids[start : start + LOOKUP_CHUNK])
                stmt = select(ProfileRow).where(
                    col(ProfileRow.tenant_id) == tenant_id, col(ProfileRow.user_id).in_(chunk)
                )
                rows = (await conn.execute(stmt)).all()
                for profile in await with_consents(conn, tenant_id, rows):
                    found[profile.user_id] = profile
        return found

    async def page(
        self, tenant_id: str, after: str, limit: int, topic: str = ""
    ) -> list[profile_pb2.Profile]:
        """Up to `limit` profiles with user ids after `after`, in id order
        (keyset pagination); only the topic's members if one is given."""
        stmt = select(ProfileRow).where(
            col(ProfileRow.tenant_id) == tenant_id, col(ProfileRow.user_id) > after
        )
        if topic:
            stmt = stmt.join(
                TopicMemberRow,
                (col(TopicMemberRow.tenant_id) == col(ProfileRow.tenant_id))
                & (col(TopicMemberRow.user_id) == col(ProfileRow.user_id)),
            ).where(col(TopicMemberRow.topic) == topic)
        stmt = stmt.order_by(col(ProfileRow.user_id)).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
            return await with_consents(conn, tenant_id, rows)

    async def remove_webpush(
        self, tenant_id: str, user_id: str, endpoints: Sequence[str], now: datetime
    ) -> int:
        """Drops the subscriptions with these endpoints; how many there were."""
        gone = set(endpoints)
        async with write(self.engine) as conn:
            stmt = select(col(ProfileRow.webpush)).where(_of(ProfileRow, tenant_id, user_id))
            subs = (await conn.execute(stmt)).scalar_one_or_none()
            kept = [s for s in subs or [] if s.get("endpoint") not in gone]
            removed = len(subs or []) - len(kept)
            if removed:
                await conn.execute(
                    update(ProfileRow)
                    .where(_of(ProfileRow, tenant_id, user_id))
                    .values(webpush=kept, updated_at=now)
                )
        return removed

    async def erase(self, tenant_id: str, user_id: str) -> bool:
        """GDPR erase in one transaction: profile, consents, topics, events."""
        removed = 0
        async with write(self.engine) as conn:
            for model in TABLES:
                result = await conn.execute(delete(model).where(_of(model, tenant_id, user_id)))
                removed += result.rowcount
        return removed > 0
