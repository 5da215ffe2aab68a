"""ProfileStore on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.profile.consent_store import ConsentStore
from services.profile.event_store import EventStore
from services.profile.store import TABLES, BehaviourEventRow, ProfileStore
from services.profile.topic_store import TopicStore
from tests.integration.profile.conftest import full_profile

C = intent_pb2.Channel
T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def store(store_engine):
    return ProfileStore(await store_engine(TABLES))


@pytest.fixture
def events(store):
    return EventStore(store.engine)


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


async def test_events_are_stored_per_tenant_and_user(store, events):
    await events.record(
        "acme",
        [
            ("u1", event("purchase", T0, sku="42")),
            ("u1", event("page_view", T0 + timedelta(seconds=1))),
            ("u2", event("purchase", T0)),
        ],
    )
    await events.record("globex", [("u1", event("purchase", T0))])
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


async def test_erase_removes_profile_and_events_of_one_user_in_one_tenant(store, events):
    for tenant in ("acme", "globex"):
        await store.upsert(tenant, full_profile("u1"), T0)
        await events.record(tenant, [("u1", event("purchase", T0))])
    await store.upsert("acme", full_profile("u2"), T0)

    assert await store.erase("acme", "u1") is True
    assert await store.get_many("acme", ["u1", "u2"]) == {"u2": stamped(full_profile("u2"), T0)}
    assert await event_count(store, "acme", "u1") == 0
    assert list(await store.get_many("globex", ["u1"])) == ["u1"]
    assert await event_count(store, "globex", "u1") == 1
    assert await store.erase("acme", "u1") is False


async def test_erase_of_events_alone_counts_as_erased(store, events):
    await events.record("acme", [("u9", event("cart_add", T0))])
    assert await store.erase("acme", "u9") is True
    assert await event_count(store, "acme", "u9") == 0


async def test_quiet_hours_round_trip_and_an_upsert_without_them_clears_them(store):
    profile = full_profile("u1")
    profile.quiet_hours.start_minute, profile.quiet_hours.end_minute = 1260, 480
    assert (await store.upsert("acme", profile, T0)).quiet_hours == profile.quiet_hours
    disabled = full_profile("u2")
    disabled.quiet_hours.disabled = True
    await store.upsert("acme", disabled, T0)
    found = await store.get_many("acme", ["u1", "u2"])
    assert found["u1"].quiet_hours == profile.quiet_hours
    assert found["u2"].HasField("quiet_hours") and found["u2"].quiet_hours.disabled
    await store.upsert("acme", full_profile("u1"), T0)
    assert not (await store.get_many("acme", ["u1"]))["u1"].HasField("quiet_hours")


async def test_an_upsert_keeps_the_consents_and_answers_with_them(store):
    consents = ConsentStore(store.engine)
    await store.upsert("acme", full_profile("u1"), T0)
    statement = profile_pb2.Consent(channel=C.CHANNEL_EMAIL, granted=True, source="signup_form")
    statement.at.FromDatetime(T0)
    await consents.add("acme", "u1", statement, T0)
    replacement = profile_pb2.Profile(user_id="u1", locale="en")
    replacement.consents.add(channel=C.CHANNEL_SMS, granted=True, source="forged")
    saved = await store.upsert("acme", replacement, T0 + timedelta(hours=1))
    assert list(saved.consents) == [statement]
    assert list((await store.get_many("acme", ["u1"]))["u1"].consents) == [statement]


async def test_dead_web_push_subscriptions_are_removed_and_the_rest_kept(store):
    profile = full_profile("u1")
    profile.contacts.webpush.add(endpoint="https://push.example/sub/2", p256dh="K2", auth="A2")
    await store.upsert("acme", profile, T0)
    later = T0 + timedelta(minutes=5)
    removed = await store.remove_webpush(
        "acme", "u1", ["https://push.example/sub/1", "https://push.example/none"], later
    )
    assert removed == 1
    found = (await store.get_many("acme", ["u1"]))["u1"]
    assert [s.endpoint for s in found.contacts.webpush] == ["https://push.example/sub/2"]
    assert found.updated_at.ToDatetime(tzinfo=UTC) == later
    assert await store.remove_webpush("acme", "u1", ["https://push.example/sub/1"], later) == 0
    assert await store.remove_webpush("acme", "nobody", ["https://push.example/x"], later) == 0


async def test_pages_of_profiles_follow_the_user_id_after_the_cursor(store):
    users = [f"user-{n:03d}" for n in range(25)]
    for user in reversed(users):
        await store.upsert("acme", full_profile(user), T0)
    await store.upsert("globex", full_profile("user-999"), T0)
    seen: list[str] = []
    cursor = ""
    while page := await store.page("acme", cursor, 10):
        seen.extend(p.user_id for p in page)
        cursor = page[-1].user_id
    assert seen == users


async def test_a_topic_page_holds_members_with_a_profile_only(store):
    topics = TopicStore(store.engine)
    for user in ("a", "b", "c"):
        await store.upsert("acme", full_profile(user), T0)
    await topics.subscribe("acme", "news", ["c", "a", "ghost"])
    await topics.subscribe("acme", "other", ["b"])
    assert [p.user_id for p in await store.page("acme", "", 10, topic="news")] == ["a", "c"]
    assert [p.user_id for p in await store.page("acme", "a", 10, topic="news")] == ["c"]
    assert await store.page("globex", "", 10, topic="news") == []


async def test_erase_removes_consents_and_topic_memberships_too(store, events):
    consents, topics = ConsentStore(store.engine), TopicStore(store.engine)
    for tenant in ("acme", "globex"):
        await store.upsert(tenant, full_profile("u1"), T0)
        await consents.add(tenant, "u1", profile_pb2.Consent(granted=True, source="form"), T0)
        await topics.subscribe(tenant, "news", ["u1"])
        await events.record(tenant, [("u1", event("purchase", T0))])
    assert await store.erase("acme", "u1") is True
    for model in TABLES:
        assert await rows_of(store.engine, model, "acme", "u1") == 0
        assert await rows_of(store.engine, model, "globex", "u1") == 1


async def rows_of(engine: AsyncEngine | None, model, tenant: str, user: str) -> int:
    assert engine is not None
    async with engine.connect() as conn:
        stmt = (
            select(func.count())
            .select_from(model)
            .where(model.tenant_id == tenant, model.user_id == user)
        )
        return int((await conn.execute(stmt)).scalar_one())
