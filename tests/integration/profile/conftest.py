from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profile.__main__ import create_runtime
from services.profile.rows import to_row
from services.profile.settings import ProfileSettings
from services.profile.store import ProfileRow
from shared.clock import utcnow
from shared.db import table_of
from shared.runtime import ServiceRuntime
from tests.conftest import running
from tests.integration.grpc_helpers import channel_to


def full_profile(user: str = "u1") -> profile_pb2.Profile:
    """A profile with every field the API takes set."""
    profile = profile_pb2.Profile(user_id=user, locale="de-AT", timezone="Europe/Vienna")
    profile.attributes.update(
        {"member": False, "score": 0.75, "device": "mobile", "tags": ["a", "b"]}
    )
    profile.contacts.email = f"{user}@example.com"
    profile.contacts.phone = "+4366412345678"
    profile.contacts.webpush.add(endpoint="https://push.example/sub/1", p256dh="BKey", auth="sec")
    return profile


@pytest.fixture
async def profile_service(
    make_settings: Callable[..., Any], database_url: str
) -> AsyncIterator[ServiceRuntime]:
    """The profile service in this process, on SQLite and on PostgreSQL."""
    settings = make_settings(ProfileSettings, database_url=database_url)
    async with running(create_runtime(settings)) as runtime:
        yield runtime


@pytest.fixture
async def profiles(
    profile_service: ServiceRuntime,
) -> AsyncIterator[profile_pb2_grpc.ProfilesStub]:
    async with channel_to(profile_service.port) as channel:
        yield profile_pb2_grpc.ProfilesStub(channel)


async def seed_profiles(
    engine: AsyncEngine | None, tenant: str, profiles: Sequence[profile_pb2.Profile]
) -> None:
    """Many profiles in one statement: a fan-out test needs thousands."""
    assert engine is not None
    rows = [to_row(tenant, p, utcnow()) for p in profiles]
    async with engine.begin() as conn:
        await conn.execute(table_of(ProfileRow).insert(), rows)
