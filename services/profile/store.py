"""Profiles and behaviour events, per tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import JSON, Column, Index, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, col

from shared.clock import to_timestamp
from shared.db import insert_ignore, is_postgres, table_of, utc_field, write


class ProfileRow(SQLModel, table=True):
    __tablename__ = "profiles"
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
    updated_at: datetime = utc_field()


class BehaviourEventRow(SQLModel, table=True):
    __tablename__ = "behaviour_events"
    __table_args__ = (Index("ix_events_lookup", "tenant_id", "user_id", "name", "occurred_at"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    user_id: str
    name: str
    occurred_at: datetime = utc_field()
    properties: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


TABLES = (ProfileRow, BehaviourEventRow)

# Ids per lookup statement: well below every dialect's bind-parameter limit.
LOOKUP_CHUNK = 5000


def to_row(tenant_id: str, profile: profile_pb2.Profile, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "user_id": profile.user_id,
        "attributes": json_format.MessageToDict(profile.attributes),
        "locale": profile.locale,
        "timezone": profile.timezone,
        "email": profile.contacts.email,
        "phone": profile.contacts.phone,
        "webpush": [json_format.MessageToDict(s) for s in profile.contacts.webpush],
        "updated_at": now,
    }


def to_proto(row: ProfileRow) -> profile_pb2.Profile:
    profile = profile_pb2.Profile(
        user_id=row.user_id,
        locale=row.locale,
        timezone=row.timezone,
        updated_at=to_timestamp(row.updated_at),
    )
    profile.attributes.update(row.attributes)
    profile.contacts.email = row.email
    profile.contacts.phone = row.phone
    for sub in row.webpush:
        json_format.ParseDict(sub, profile.contacts.webpush.add())
    return profile


class ProfileStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def upsert(
        self, tenant_id: str, profile: profile_pb2.Profile, now: datetime
    ) -> profile_pb2.Profile:
        row = to_row(tenant_id, profile, now)
        table = table_of(ProfileRow)
        async with write(self.engine) as conn:
            ins = (postgresql.insert if is_postgres(conn) else sqlite.insert)(table)
            stmt = ins.values(row).on_conflict_do_update(
                index_elements=[table.c.tenant_id, table.c.user_id],
                set_={k: ins.excluded[k] for k in row if k not in ("tenant_id", "user_id")},
            )
            await conn.execute(stmt)
        return to_proto(ProfileRow.model_validate(row))

    async def get_many(
        self, tenant_id: str, user_ids: Sequence[str]
    ) -> dict[str, profile_pb2.Profile]:
        """The profiles that exist among `user_ids`: one query per LOOKUP_CHUNK ids.

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
                for row in (await conn.execute(stmt)).all():
                    found[row.user_id] = to_proto(ProfileRow.model_validate(row._mapping))
        return found

    async def record_events(
        self, tenant_id: str, events: Sequence[tuple[str, profile_pb2.BehaviourEvent]]
    ) -> None:
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
        async with write(self.engine) as conn:
            await conn.execute(insert_ignore(conn, BehaviourEventRow), rows)

    async def erase(self, tenant_id: str, user_id: str) -> bool:
        async with write(self.engine) as conn:
            gone = await conn.execute(
                delete(ProfileRow).where(
                    col(ProfileRow.tenant_id) == tenant_id, col(ProfileRow.user_id) == user_id
                )
            )
            events = await conn.execute(
                delete(BehaviourEventRow).where(
                    col(BehaviourEventRow.tenant_id) == tenant_id,
                    col(BehaviourEventRow.user_id) == user_id,
                )
            )
        return bool(gone.rowcount or events.rowcount)
