"""ProfileStore on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import func, select

from services.profile.store import TABLES, BehaviourEventRow, ProfileStore
from tests.integration.profile.conftest import full_profile

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def store(store_engine):
    return ProfileStore(await store_engine(TABLES))


def event(name: str, at: datetime, **properties: str) -> profile_pb2.BehaviourEvent:
    e = profile_pb2.BehaviourEvent(name=name, properties=properties)
    e.occurred_at.FromDatetime(at)
    return e


async def event_count(store: ProfileStore, tenant: str, user: str) -> int:
    async with store.engine.connect() as conn:
        stmt = (
            select(func.count())
            .select_from(BehaviourEventRow)
            .where(BehaviourEventRow.tenant_id == tenant, BehaviourEventRow.user_id == user)  # type: ignore[arg-type]
        )
        return int((await conn.execute(stmt)).scalar_one())


def stamped(profile: profile_pb2.Profile, at: datetime) -> profile_pb2.Profile:
    copy = profile_pb2.Profile()
    copy.CopyFrom(profile)
    copy.updated_at.FromDatetime(at)
    return copy


async def test_a_profile_round_trips_with_attributes_contacts_and_update_time(store):
    profile = full_profile("u1")
    profile.attributes.update({"nested": {"level": 3, "vip": True}, "none": None})
    saved = await store.upsert("acme", profile, T0)
    assert saved == stamped(profile, T0)
    assert await store.get_many("acme", ["u1"]) == {"u1": stamped(profile, T0)}


async def test_an_upsert_replaces_every_field_and_the_update_time(store):
    await store.upsert("acme", full_profile("u1"), T0)
    replacement = profile_pb2.Profile(user_id="u1", timezone="UTC")
    replacement.contacts.SetInParent()
    later = T0 + timedelta(hours=1)
    await store.upsert("acme", replacement, later)
    assert await store.get_many("acme", ["u1"]) == {"u1": stamped(replacement, later)}


async def test_get_many_answers_with_the_profiles_that_exist_in_the_tenant_only(store):
    for user in ("u1", "u2", "u3"):
        await store.upsert("acme", full_profile(user), T0)
    await store.upsert("globex", full_profile("u4"), T0)
    found = await store.get_many("acme", ["u3", "u1", "u4", "nobody"])
    assert sorted(found) == ["u1", "u3"]
    assert found["u3"].contacts.email == "u3@example.com"
    assert await store.get_many("acme", []) == {}
    assert await store.get_many("initech", ["u1"]) == {}


async def test_get_many_finds_every_recipient_of_a_full_size_intent(store):
    users = [f"user-{n:05d}" for n in range(10_000)]
    for user in users[::1000]:
        await store.upsert("acme", full_profile(user), T0)
    found = await store.get_many("acme", users)
    assert sorted(found) == users[::1000]


async def test_get_many_looks_up_more_recipients_than_one_statement_can_bind(store):
    # The plan consumer looks up every recipient of a whole batch of envelopes
    # in one call: batch_size envelopes of up to 10,000 recipients each.
    users = [f"user-{n:05d}" for n in range(40_000)]
    await store.upsert("acme", full_profile(users[-1]), T0)
    found = await store.get_many("acme", users)
    assert list(found) == [users[-1]]


async def test_events_are_stored_per_tenant_and_user(store):
    await store.record_events(
        "acme",
        [
            ("u1", event("purchase", T0, sku="42")),
            ("u1", event("page_view", T0 + timedelta(seconds=1))),
            ("u2", event("purchase", T0)),
        ],
    )
    await store.record_events("globex", [("u1", event("purchase", T0))])
    assert await event_count(store, "acme", "u1") == 2
    assert await event_count(store, "acme", "u2") == 1
    assert await event_count(store, "globex", "u1") == 1
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(BehaviourEventRow)
                .where(BehaviourEventRow.name == "purchase")  # type: ignore[arg-type]
                .where(BehaviourEventRow.tenant_id == "acme", BehaviourEventRow.user_id == "u1")  # type: ignore[arg-type]
            )
        ).one()
    assert (row.occurred_at, row.properties) == (T0, {"sku": "42"})


async def test_erase_removes_profile_and_events_of_one_user_in_one_tenant(store):
    for tenant in ("acme", "globex"):
        await store.upsert(tenant, full_profile("u1"), T0)
        await store.record_events(tenant, [("u1", event("purchase", T0))])
    await store.upsert("acme", full_profile("u2"), T0)

    assert await store.erase("acme", "u1") is True
    assert await store.get_many("acme", ["u1", "u2"]) == {"u2": stamped(full_profile("u2"), T0)}
    assert await event_count(store, "acme", "u1") == 0
    assert list(await store.get_many("globex", ["u1"])) == ["u1"]
    assert await event_count(store, "globex", "u1") == 1
    assert await store.erase("acme", "u1") is False


async def test_erase_of_events_alone_counts_as_erased(store):
    await store.record_events("acme", [("u9", event("cart_add", T0))])
    assert await store.erase("acme", "u9") is True
    assert await event_count(store, "acme", "u9") == 0
