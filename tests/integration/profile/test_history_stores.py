"""Event, consent and topic stores on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2
from sqlalchemy import select

from services.profile.consent_store import ConsentStore
from services.profile.event_store import EventStore
from services.profile.store import TABLES, ConsentRow, ProfileStore
from services.profile.topic_store import TopicStore
from tests.integration.profile.conftest import full_profile

C = intent_pb2.Channel
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(store_engine):
    return await store_engine(TABLES)


def event(name: str, at: datetime, **properties: str) -> profile_pb2.BehaviourEvent:
    e = profile_pb2.BehaviourEvent(name=name, properties=properties)
    e.occurred_at.FromDatetime(at)
    return e


def statement(channel: int, granted: bool, at: datetime, category: str = "", source: str = "form"):
    c = profile_pb2.Consent(channel=channel, category=category, granted=granted, source=source)  # type: ignore[arg-type]
    c.at.FromDatetime(at)
    return c


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


async def test_a_users_events_page_newest_first_through_equal_times_each_once(engine):
    events = EventStore(engine)
    # Three events share one instant: the row id orders them.
    written = [event("view", hours(n // 3), n=str(n)) for n in range(23)]
    await events.record("acme", [("u1", e) for e in written])
    await events.record("acme", [("u2", event("view", hours(1)))])
    seen: list[str] = []
    after = None
    while True:
        page, after = await events.page("acme", "u1", after=after, limit=5)
        seen.extend(e.properties["n"] for e in page)
        if after is None:
            break
    assert seen == [str(n) for n in reversed(range(23))]


async def test_events_filter_by_name_and_a_half_open_window(engine):
    events = EventStore(engine)
    await events.record(
        "acme",
        [
            ("u1", event("purchase", hours(0))),
            ("u1", event("purchase", hours(1))),
            ("u1", event("page_view", hours(1))),
            ("u1", event("purchase", hours(2))),
        ],
    )
    page, after = await events.page("acme", "u1", name="purchase", since=hours(1), until=hours(2))
    assert [(e.name, e.occurred_at.ToDatetime(tzinfo=UTC)) for e in page] == [
        ("purchase", hours(1))
    ]
    assert after is None
    everything, _ = await events.page("acme", "u1")
    assert len(everything) == 4
    assert (await events.page("globex", "u1"))[0] == []


async def test_recent_events_are_those_of_these_users_and_names_since_then(engine):
    events = EventStore(engine)
    await events.record(
        "acme",
        [
            ("u1", event("purchase", hours(5), sku="1")),
            ("u1", event("purchase", hours(1))),  # too old
            ("u1", event("page_view", hours(5))),  # other name
            ("u2", event("checkout", hours(6))),
            ("u3", event("purchase", hours(6))),  # not asked for
        ],
    )
    await events.record("globex", [("u1", event("purchase", hours(6)))])
    found = await events.recent("acme", ["u1", "u2", "nobody"], {"purchase", "checkout"}, hours(2))
    assert {u: [(e.name, dict(e.properties)) for e in es] for u, es in found.items()} == {
        "u1": [("purchase", {"sku": "1"})],
        "u2": [("checkout", {})],
    }
    assert await events.recent("acme", ["u1"], set(), hours(0)) == {}


async def test_recent_events_of_more_users_than_one_statement_binds(engine):
    events = EventStore(engine)
    users = [f"user-{n:05d}" for n in range(12_000)]
    await events.record("acme", [(users[-1], event("purchase", hours(1)))])
    found = await events.recent("acme", users, {"purchase"}, hours(0))
    assert list(found) == [users[-1]]


async def test_consent_statements_are_appended_never_changed(engine):
    profiles, consents = ProfileStore(engine), ConsentStore(engine)
    await profiles.upsert("acme", full_profile("u1"), T0)
    given = statement(C.CHANNEL_EMAIL, True, hours(0), source="signup_form")
    withdrawn = statement(C.CHANNEL_EMAIL, False, hours(2), source="preference_center")
    sms = statement(C.CHANNEL_SMS, True, hours(1), category="promo")
    await consents.add("acme", "u1", given, hours(0))
    first_row = await consent_rows(engine)
    await consents.add("acme", "u1", withdrawn, hours(2))
    profile = await consents.add("acme", "u1", sms, hours(3))
    assert profile is not None
    assert list(profile.consents) == [withdrawn, sms]  # the latest per pair, by pair
    rows = await consent_rows(engine)
    assert len(rows) == 3 and rows[0] == first_row[0]
    assert [(r.granted, r.source, r.recorded_at) for r in rows] == [
        (True, "signup_form", hours(0)),
        (False, "preference_center", hours(2)),
        (True, "form", hours(3)),
    ]


async def test_consent_history_pages_newest_first_with_every_statement(engine):
    profiles, consents = ProfileStore(engine), ConsentStore(engine)
    await profiles.upsert("acme", full_profile("u1"), T0)
    written = [statement(C.CHANNEL_EMAIL, n % 2 == 0, hours(n // 2)) for n in range(7)]
    for c in written:
        await consents.add("acme", "u1", c, T0)
    seen: list[profile_pb2.Consent] = []
    after = None
    while True:
        page, after = await consents.history("acme", "u1", after=after, limit=3)
        seen.extend(page)
        if after is None:
            break
    assert seen == list(reversed(written))
    assert (await consents.history("globex", "u1"))[0] == []


async def test_consent_for_a_user_without_a_profile_is_not_stored(engine):
    consents = ConsentStore(engine)
    assert await consents.add("acme", "ghost", statement(0, True, T0), T0) is None
    assert await consent_rows(engine) == []


async def consent_rows(engine) -> list[ConsentRow]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(ConsentRow).order_by(ConsentRow.id))  # type: ignore[arg-type]
        return [ConsentRow.model_validate(r._mapping) for r in rows]


async def test_subscribe_and_unsubscribe_count_only_what_changed(engine):
    topics = TopicStore(engine)
    assert await topics.subscribe("acme", "news", ["a", "b", "a"]) == 2
    assert await topics.subscribe("acme", "news", ["b", "c"]) == 1
    assert await topics.subscribe("globex", "news", ["a"]) == 1
    assert await topics.topics_of("acme", "a") == ["news"]
    assert await topics.unsubscribe("acme", "news", ["a", "zzz"]) == 1
    assert await topics.unsubscribe("acme", "news", ["a"]) == 0
    assert await topics.topics_of("acme", "a") == []
    assert await topics.topics_of("globex", "a") == ["news"]


async def test_ten_thousand_members_join_in_one_call_and_only_profiles_count(engine):
    profiles, topics = ProfileStore(engine), TopicStore(engine)
    users = [f"user-{n:05d}" for n in range(10_000)]
    assert await topics.subscribe("acme", "big", users) == 10_000
    for user in users[:3]:
        await profiles.upsert("acme", full_profile(user), T0)
    assert await topics.count_recipients("acme", "big") == 3
    assert await topics.unsubscribe("acme", "big", users) == 10_000
