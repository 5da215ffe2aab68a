"""The frequency stage on the real broker: frequency queue -> send.<channel> and events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency.__main__ import create_runtime
from services.frequency.settings import FrequencySettings
from shared import envelopes
from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import now_timestamp
from shared.envelopes import decode_envelope
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
NAMES: dict[int, str] = {C.CHANNEL_EMAIL: "email", C.CHANNEL_SMS: "sms", C.CHANNEL_INAPP: "inapp"}


@pytest.fixture
def topo(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


@pytest.fixture
async def frequency(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(FrequencySettings))) as runtime:
        yield runtime


def allowed_envelope(
    strategy: int, channels: list[int], users: list[str], delivered_in: list[int] | None = None
) -> envelope_pb2.Envelope:
    """An envelope as eligibility sends it on: every delivery allowed so far."""
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="intent-f")
    env.accepted_at.CopyFrom(now_timestamp())
    env.intent.strategy = strategy  # type: ignore[assignment]
    env.intent.channels.extend(channels)  # type: ignore[arg-type]
    for user in users:
        for channel in delivered_in or channels:
            delivery = env.deliveries.add(
                delivery_id=f"{user}-{NAMES[channel]}",
                user_id=user,
                channel=channel,
            )
            delivery.decisions.append(
                envelopes.decision("profile", S.DELIVERY_STATE_PENDING, "planned")
            )
            delivery.decisions.append(
                envelopes.decision("eligibility", S.DELIVERY_STATE_PENDING, "allowed")
            )
        env.profiles[user].user_id = user
        env.profiles[user].contacts.email = f"{user}@example.com"
    return env


async def test_first_available_sends_only_the_first_channel_and_reports_the_others_skipped(
    frequency, amqp_url, topo
):
    # Deliveries listed in another order than the intent's: the intent's order decides.
    env = allowed_envelope(
        intent_pb2.STRATEGY_FIRST_AVAILABLE,
        [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP],
        ["u1", "u2"],
        delivered_in=[C.CHANNEL_INAPP, C.CHANNEL_SMS, C.CHANNEL_EMAIL],
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [email_msg] = await drain(amqp_url, topo.queue(topology.send_stage("email")), 1)
    [events_msg] = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    for other in ("sms", "inapp"):
        assert await drain(amqp_url, topo.queue(topology.send_stage(other)), 1, within=0.5) == []

    to_email = decode_envelope(email_msg.body)
    assert sorted(d.delivery_id for d in to_email.deliveries) == ["u1-email", "u2-email"]
    for d in to_email.deliveries:
        assert [(x.stage, x.reason) for x in d.decisions] == [
            ("profile", "planned"),
            ("eligibility", "allowed"),
            ("frequency", "no_cap_policy"),
        ]
        assert d.decisions[-1].state == S.DELIVERY_STATE_PENDING
    assert sorted(to_email.profiles) == ["u1", "u2"]

    events = envelope_pb2.EventBatch.FromString(events_msg.body).events
    assert sorted(e.delivery_id for e in events) == ["u1-inapp", "u1-sms", "u2-inapp", "u2-sms"]
    for e in events:
        assert (e.decision.stage, e.decision.state, e.decision.reason) == (
            "frequency",
            S.DELIVERY_STATE_SKIPPED,
            "fallback_not_needed",
        )
        assert [(x.stage, x.reason) for x in e.trail] == [
            ("profile", "planned"),
            ("eligibility", "allowed"),
        ]
        assert (e.tenant_id, e.intent_id) == ("acme", "intent-f")


async def test_first_available_uses_the_next_channel_when_the_first_did_not_reach_this_stage(
    frequency, amqp_url, topo
):
    # Email was suppressed by eligibility: only inapp arrives, and it is sent.
    env = allowed_envelope(
        intent_pb2.STRATEGY_FIRST_AVAILABLE,
        [C.CHANNEL_EMAIL, C.CHANNEL_INAPP],
        ["u1"],
        delivered_in=[C.CHANNEL_INAPP],
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    [inapp_msg] = await drain(amqp_url, topo.queue(topology.send_stage("inapp")), 1)
    assert [d.delivery_id for d in decode_envelope(inapp_msg.body).deliveries] == ["u1-inapp"]
    assert await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1, within=0.5) == []


async def test_all_routes_each_delivery_to_its_channels_send_queue_and_reports_nothing(
    frequency, amqp_url, topo
):
    env = allowed_envelope(
        intent_pb2.STRATEGY_ALL, [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_INAPP], ["u1", "u2"]
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    for channel in ("email", "sms", "inapp"):
        [msg] = await drain(amqp_url, topo.queue(topology.send_stage(channel)), 1)
        onward = decode_envelope(msg.body)
        assert sorted(d.delivery_id for d in onward.deliveries) == [
            f"u1-{channel}",
            f"u2-{channel}",
        ]
        assert all(d.decisions[-1].reason == "no_cap_policy" for d in onward.deliveries)
        assert sorted(onward.profiles) == ["u1", "u2"]
        assert (onward.tenant_id, onward.intent_id, onward.intent) == (
            "acme",
            "intent-f",
            env.intent,
        )
    assert await drain(amqp_url, topo.queue(topology.send_stage("webpush")), 1, within=0.5) == []
    assert await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1, within=0.5) == []


async def test_an_unspecified_strategy_is_all(frequency, amqp_url, topo):
    env = allowed_envelope(
        intent_pb2.STRATEGY_UNSPECIFIED, [C.CHANNEL_EMAIL, C.CHANNEL_INAPP], ["u1"]
    )
    await publish_to_stage(amqp_url, topo, topology.FREQUENCY, env)
    for channel in ("email", "inapp"):
        [msg] = await drain(amqp_url, topo.queue(topology.send_stage(channel)), 1)
        assert [d.delivery_id for d in decode_envelope(msg.body).deliveries] == [f"u1-{channel}"]
