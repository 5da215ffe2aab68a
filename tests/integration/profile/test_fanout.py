"""Topic and segment audiences fan out a page at a time; exclude_if rules get
their events attached. On the real broker and both databases."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.__main__ import create_runtime
from services.profile.consumer import PlanConsumer
from services.profile.event_store import EventStore
from services.profile.resolver import AudienceResolver
from services.profile.settings import ProfileSettings
from services.profile.store import ProfileStore
from services.profile.topic_store import TopicStore
from shared.bus import topology
from shared.bus.publisher import Outbound
from shared.bus.topology import Topology
from shared.clock import utcnow
from shared.envelopes import decode_envelope
from shared.ids import delivery_id
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage, queue_depth
from tests.integration.profile.conftest import full_profile, seed_profiles
from tests.integration.profile.test_consumer import collect, plan_envelope

C = intent_pb2.Channel
PAGE = 500
CHANNELS = [C.CHANNEL_EMAIL, C.CHANNEL_INAPP]


@pytest.fixture
async def service(
    request: pytest.FixtureRequest, make_settings: Callable[..., Any], database_url: str
) -> AsyncIterator[ServiceRuntime]:
    """The profile service; its audience page size is PAGE unless a test says."""
    page = getattr(request, "param", PAGE)
    settings = make_settings(ProfileSettings, database_url=database_url, audience_page_size=page)
    async with running(create_runtime(settings)) as runtime:
        yield runtime


def consumer_of(runtime: ServiceRuntime) -> PlanConsumer:
    """A plan consumer on the service's own database and bus, to call directly."""
    assert runtime.engine is not None and runtime.bus is not None
    profiles, events = ProfileStore(runtime.engine), EventStore(runtime.engine)
    resolver = AudienceResolver(profiles, events, TopicStore(runtime.engine), PAGE)
    return PlanConsumer(runtime.bus, profiles, events, resolver, 500)


def audience_envelope(intent_id: str, **audience: str) -> envelope_pb2.Envelope:
    env = plan_envelope(intent_id, [], CHANNELS)
    env.intent.audience.MergeFrom(intent_pb2.Audience(**audience))
    return env


def split(outs: list[Outbound]) -> tuple[list[envelope_pb2.Envelope], list[envelope_pb2.Envelope]]:
    """(onward envelopes to eligibility, plan envelopes published again)."""
    onward = [decode_envelope(o.body) for o in outs if o.routing_key == topology.ELIGIBILITY]
    again = [decode_envelope(o.body) for o in outs if o.routing_key == topology.PLAN]
    return onward, again


async def members(runtime: ServiceRuntime, count: int, topic: str = "news") -> list[str]:
    users = [f"user-{n:04d}" for n in range(count)]
    await seed_profiles(runtime.engine, "acme", [full_profile(u) for u in users])
    assert runtime.engine is not None
    await TopicStore(runtime.engine).subscribe("acme", topic, users)
    return users


async def test_a_topic_fans_out_a_page_per_plan_message_and_passes_the_cursor_on(
    service: ServiceRuntime,
):
    users = await members(service, 2_000)
    stage = consumer_of(service)
    env = audience_envelope("intent-topic", topic="news")
    cursors: list[str] = []
    planned: Counter[str] = Counter()
    while True:
        outs = await stage.handle([env])
        onward, again = split(outs)
        assert all(0 < len(e.deliveries) <= 500 for e in onward)
        page_users = {d.user_id for e in onward for d in e.deliveries}
        assert len(page_users) == (PAGE if again else 0)
        planned.update(d.delivery_id for e in onward for d in e.deliveries)
        if not again:
            break
        [env] = again
        assert env.intent.audience.topic == "news" and env.deliveries == []
        assert max(page_users) == env.audience_cursor
        cursors.append(env.audience_cursor)
    assert cursors == ["user-0499", "user-0999", "user-1499", "user-1999"]
    expected = {delivery_id("intent-topic", u, c) for u in users for c in CHANNELS}
    assert set(planned) == expected and set(planned.values()) == {1}


async def test_a_fan_out_resumes_after_the_cursor_of_the_last_page_done(service: ServiceRuntime):
    users = await members(service, 1_200)
    env = audience_envelope("intent-resume", topic="news")
    env.audience_cursor = "user-0999"
    onward, again = split(await consumer_of(service).handle([env]))
    assert sorted({d.user_id for e in onward for d in e.deliveries}) == users[1000:]
    assert again == []


async def test_a_topic_of_2000_members_reaches_eligibility_once_each_through_the_broker(
    service: ServiceRuntime, amqp_url: str, namespace: str
):
    users = await members(service, 2_000)
    # Other topics' members are not in it.
    await seed_profiles(service.engine, "acme", [full_profile("outsider")])
    assert service.engine is not None
    await TopicStore(service.engine).subscribe("acme", "other", ["outsider", "user-0001"])
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    await publish_to_stage(amqp_url, topo, topology.PLAN, audience_envelope("i2k", topic="news"))
    expected = {delivery_id("i2k", u, c) for u in users for c in CHANNELS}
    envelopes = await collect(
        amqp_url,
        topo.queue(topology.ELIGIBILITY),
        decode_envelope,
        lambda got: sum(len(e.deliveries) for e in got) >= len(expected),
        within=60,
    )
    assert await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=1.5) == []
    planned = [d.delivery_id for e in envelopes for d in e.deliveries]
    assert len(planned) == len(expected) and set(planned) == expected
    assert all(d.decisions[-1].reason == "planned" for e in envelopes for d in e.deliveries)
    assert await queue_depth(amqp_url, topo.queue(topology.PLAN)) == 0
    assert await queue_depth(amqp_url, topo.dead_letter_queue(topology.PLAN)) == 0


MEMBERSHIP = (
    'member = false AND device = "mobile" AND '
    'event page_view where path starts with "/membership" within 7d'
)
DAY = timedelta(days=1)
# Which page views each kind of user made: (path, how long ago).
VIEWS: dict[str, list[tuple[str, timedelta]]] = {
    "recent": [("/membership/join", DAY)],
    "old": [("/membership", 8 * DAY)],
    "elsewhere": [("/shop", DAY)],
    "both": [("/shop", DAY), ("/membership", 6 * DAY)],
    "none": [],
}


def wanted(member: object, device: str, views: str) -> bool:
    """The membership segment, said plainly, to check the service against."""
    return member is False and device == "mobile" and views in ("recent", "both")


# Pages of 7 candidates: the segment is resolved over 13 plan messages.
@pytest.mark.parametrize("service", [7], indirect=True)
async def test_the_membership_segment_selects_exactly_the_right_users(
    service: ServiceRuntime, amqp_url: str, namespace: str
):
    now = utcnow()
    profiles, expected, events = [], set(), []
    for n in range(3):
        for member in (False, True, None):
            for device in ("mobile", "desktop"):
                for views, history in VIEWS.items():
                    user = f"u-{member}-{device}-{views}-{n}"
                    profile = full_profile(user)
                    profile.attributes["device"] = device
                    if member is None:
                        del profile.attributes["member"]
                    else:
                        profile.attributes["member"] = member
                    profiles.append(profile)
                    for path, ago in history:
                        e = profile_pb2.BehaviourEvent(name="page_view", properties={"path": path})
                        e.occurred_at.FromDatetime(now - ago)
                        events.append((user, e))
                    if wanted(member, device, views):
                        expected.add(user)
    assert service.engine is not None
    await seed_profiles(service.engine, "acme", profiles)
    await seed_profiles(service.engine, "globex", [full_profile("u-False-mobile-recent-0")])
    await EventStore(service.engine).record("acme", events)
    assert len(expected) == 6

    topo = Topology(namespace, TEST_RETRY_DELAYS)
    env = audience_envelope("i-seg", segment=MEMBERSHIP)
    await publish_to_stage(amqp_url, topo, topology.PLAN, env)
    got = await collect(
        amqp_url,
        topo.queue(topology.ELIGIBILITY),
        decode_envelope,
        lambda got: sum(len(e.deliveries) for e in got) >= len(expected) * 2,
    )
    assert await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=1.0) == []
    assert {d.user_id for e in got for d in e.deliveries} == expected
    assert all(e.tenant_id == "acme" for e in got)


async def test_a_segment_that_does_not_parse_is_dead_lettered(
    service: ServiceRuntime, amqp_url: str, namespace: str
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    env = audience_envelope("i-bad", segment="member =")
    await publish_to_stage(amqp_url, topo, topology.PLAN, env)
    [dead] = await drain(amqp_url, topo.dead_letter_queue(topology.PLAN), 1)
    assert decode_envelope(dead.body).intent_id == "i-bad"
    assert "segment" in str((dead.headers or {}).get("x-sendmesh-error"))


def purchase_rule(hours: int) -> intent_pb2.BehaviourRule:
    rule = intent_pb2.BehaviourRule(event="purchase")
    rule.within.FromTimedelta(timedelta(hours=hours))
    return rule


async def test_recipients_carry_the_stored_events_their_exclude_if_rules_could_match(
    service: ServiceRuntime,
):
    assert service.engine is not None
    await seed_profiles(service.engine, "acme", [full_profile(u) for u in ("u1", "u2", "u3")])
    now = utcnow()

    def at(name: str, hours: float) -> profile_pb2.BehaviourEvent:
        e = profile_pb2.BehaviourEvent(name=name)
        e.occurred_at.FromDatetime(now - timedelta(hours=hours))
        return e

    await EventStore(service.engine).record(
        "acme",
        [
            ("u1", at("purchase", 2)),
            ("u1", at("page_view", 1)),
            ("u2", at("purchase", 30)),
            ("ghost", at("purchase", 1)),
        ],
    )
    await EventStore(service.engine).record("globex", [("u3", at("purchase", 1))])
    listed = plan_envelope("i-rules", ["u1", "u2", "u3", "ghost"], CHANNELS)
    listed.intent.exclude_if.append(purchase_rule(24))
    plain = plan_envelope("i-plain", ["u1"], CHANNELS)
    onward, _ = split(await consumer_of(service).handle([listed, plain]))
    by_intent = {e.intent_id: e for e in onward}
    recent = {
        u: [(e.name, e.occurred_at) for e in p.recent_events]
        for u, p in by_intent["i-rules"].profiles.items()
    }
    assert recent == {
        "u1": [("purchase", at("purchase", 2).occurred_at)],
        "u2": [],
        "u3": [],
        "ghost": [("purchase", at("purchase", 1).occurred_at)],
    }
    # An intent without rules carries no events, and the stored profile has none.
    assert list(by_intent["i-plain"].profiles["u1"].recent_events) == []

    topic_env = audience_envelope("i-topic-rules", topic="news")
    await TopicStore(service.engine).subscribe("acme", "news", ["u1", "u2"])
    topic_env.intent.exclude_if.append(purchase_rule(24))
    onward, _ = split(await consumer_of(service).handle([topic_env]))
    [env] = onward
    assert [e.name for e in env.profiles["u1"].recent_events] == ["purchase"]
    assert list(env.profiles["u2"].recent_events) == []
