"""The plan consumer on the real broker: plan queue -> eligibility queue and events."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

import aio_pika
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.store import ProfileStore
from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import now_timestamp, utcnow
from shared.envelopes import decode_envelope
from shared.ids import delivery_id
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain, publish_to_stage
from tests.integration.profile.conftest import full_profile

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
T = TypeVar("T")


def plan_envelope(
    intent_id: str, users: list[str], channels: Sequence[int], tenant: str = "acme"
) -> envelope_pb2.Envelope:
    """What intake's outbox puts on the plan queue: the intent, no deliveries."""
    env = envelope_pb2.Envelope(tenant_id=tenant, intent_id=intent_id)
    env.accepted_at.CopyFrom(now_timestamp())
    env.intent.idempotency_key = intent_id
    env.intent.category = "cart_reminder"
    env.intent.kind = intent_pb2.KIND_MARKETING
    env.intent.channels.extend(channels)  # type: ignore[arg-type]
    env.intent.audience.user_ids.extend(users)
    env.intent.content.inline.inapp.title = "Your cart"
    env.intent.content.inline.email.subject = "Your cart"
    env.intent.content.inline.email.text = "misses you"
    return env


async def collect(
    amqp_url: str,
    queue_name: str,
    decode: Callable[[bytes], T],
    done: Callable[[list[T]], bool],
    within: float = 20.0,
) -> list[T]:
    """Take messages off a queue (acking them) until `done(items)` or `within` seconds."""
    loop = asyncio.get_running_loop()
    items: list[T] = []
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        deadline = loop.time() + within
        while not done(items) and loop.time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            items.append(decode(message.body))
    return items


def events_in(batches: list[envelope_pb2.EventBatch]) -> list[envelope_pb2.DeliveryEvent]:
    return [e for batch in batches for e in batch.events]


async def test_known_users_get_their_profile_and_unknown_users_a_bare_one_with_the_reason(
    profile_service: ServiceRuntime, amqp_url: str, namespace: str
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    assert profile_service.engine is not None
    store = ProfileStore(profile_service.engine)
    known = full_profile("known")
    await store.upsert("acme", known, utcnow())
    # The same user id in another tenant is somebody else.
    await store.upsert("globex", full_profile("ghost"), utcnow())

    env = plan_envelope("intent-a", ["known", "ghost"], [C.CHANNEL_EMAIL, C.CHANNEL_INAPP])
    await publish_to_stage(amqp_url, topo, topology.PLAN, env)
    [onward_msg] = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1)
    batches = await collect(
        amqp_url,
        topo.queue(topology.EVENTS_INTAKE),
        envelope_pb2.EventBatch.FromString,
        lambda got: len(events_in(got)) >= 4,
    )

    onward = decode_envelope(onward_msg.body)
    assert (onward.tenant_id, onward.intent_id) == ("acme", "intent-a")
    assert onward.intent == env.intent and onward.accepted_at == env.accepted_at
    reasons = {
        (d.user_id, d.channel): (d.delivery_id, d.decisions[-1].stage, d.decisions[-1].reason)
        for d in onward.deliveries
    }
    assert reasons == {
        ("known", C.CHANNEL_EMAIL): (
            delivery_id("intent-a", "known", C.CHANNEL_EMAIL),
            "profile",
            "planned",
        ),
        ("known", C.CHANNEL_INAPP): (
            delivery_id("intent-a", "known", C.CHANNEL_INAPP),
            "profile",
            "planned",
        ),
        ("ghost", C.CHANNEL_EMAIL): (
            delivery_id("intent-a", "ghost", C.CHANNEL_EMAIL),
            "profile",
            "unknown_recipient",
        ),
        ("ghost", C.CHANNEL_INAPP): (
            delivery_id("intent-a", "ghost", C.CHANNEL_INAPP),
            "profile",
            "unknown_recipient",
        ),
    }
    assert all(d.decisions[-1].state == S.DELIVERY_STATE_PENDING for d in onward.deliveries)
    snapshot = onward.profiles["known"]
    assert snapshot.contacts == known.contacts
    assert (snapshot.locale, snapshot.timezone, snapshot.attributes) == (
        known.locale,
        known.timezone,
        known.attributes,
    )
    assert onward.profiles["ghost"] == profile_pb2.Profile(user_id="ghost")

    events = events_in(batches)
    assert sorted((e.user_id, e.channel, e.decision.reason) for e in events) == [
        ("ghost", C.CHANNEL_EMAIL, "unknown_recipient"),
        ("ghost", C.CHANNEL_INAPP, "unknown_recipient"),
        ("known", C.CHANNEL_EMAIL, "planned"),
        ("known", C.CHANNEL_INAPP, "planned"),
    ]
    for e in events:
        assert (e.tenant_id, e.intent_id, e.accepted_at) == ("acme", "intent-a", env.accepted_at)
        assert e.decision.state == S.DELIVERY_STATE_PENDING and e.decision.stage == "profile"
    assert {e.delivery_id for e in events} == {d.delivery_id for d in onward.deliveries}


async def test_a_large_intent_is_split_into_envelopes_of_at_most_500_deliveries_each_delivery_once(
    profile_service: ServiceRuntime, amqp_url: str, namespace: str
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    assert profile_service.engine is not None
    store = ProfileStore(profile_service.engine)
    users = [f"user-{n:04d}" for n in range(1_200)]
    for user in users[:50]:
        await store.upsert("acme", full_profile(user), utcnow())
    channels = [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP]
    expected = {delivery_id("intent-big", u, c) for u in users for c in channels}
    assert len(expected) == 3_600

    await publish_to_stage(
        amqp_url, topo, topology.PLAN, plan_envelope("intent-big", users, channels)
    )
    envelopes = await collect(
        amqp_url,
        topo.queue(topology.ELIGIBILITY),
        decode_envelope,
        lambda got: sum(len(e.deliveries) for e in got) >= len(expected),
    )
    batches = await collect(
        amqp_url,
        topo.queue(topology.EVENTS_INTAKE),
        envelope_pb2.EventBatch.FromString,
        lambda got: len(events_in(got)) >= len(expected),
    )
    # Nothing more follows: every delivery was published once.
    assert await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 1, within=1.0) == []

    assert len(envelopes) > 1
    assert all(0 < len(env.deliveries) <= 500 for env in envelopes)
    planned = [d.delivery_id for env in envelopes for d in env.deliveries]
    assert len(planned) == len(set(planned)) == len(expected)
    assert set(planned) == expected
    reported = [e.delivery_id for e in events_in(batches)]
    assert sorted(reported) == sorted(expected)

    # A recipient's deliveries travel together (frequency picks among them),
    # and each envelope carries the profiles of its own recipients only.
    envelope_of: dict[str, set[int]] = defaultdict(set)
    for index, env in enumerate(envelopes):
        recipients = {d.user_id for d in env.deliveries}
        assert set(env.profiles) == recipients
        for user in recipients:
            envelope_of[user].add(index)
    assert all(len(indexes) == 1 for indexes in envelope_of.values())
    assert len(envelope_of) == 1_200

    reasons = {d.user_id: d.decisions[-1].reason for env in envelopes for d in env.deliveries}
    assert {u for u, r in reasons.items() if r == "planned"} == set(users[:50])
    assert {u for u, r in reasons.items() if r == "unknown_recipient"} == set(users[50:])
