"""The channel worker runtime against the real broker: retries through delay
queues, dead letters, permanent failures and cancellations."""

from __future__ import annotations

import asyncio

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels import store
from services.sms.__main__ import create_runtime
from services.sms.settings import SmsSettings
from shared.bus import topology
from shared.bus.topology import Topology
from shared.clock import now_timestamp
from shared.envelopes import decode_envelope
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage, queue_depth
from tests.integration.channels.support import (
    ScriptedProvider,
    consumed,
    envelope,
    events_of,
    eventually,
    provider_registered,
    publish_event,
    sample,
    take_all,
)

State = intent_pb2.DeliveryState
STAGE = topology.send_stage("sms")


def _topology(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


async def test_a_transient_failure_is_retried_through_delay_queues_and_sent_once(
    make_settings, amqp_url, namespace
):
    topo = _topology(namespace)
    provider = ScriptedProvider("transient", "transient", "sent")
    env = envelope("sms")
    with provider_registered("sms", provider) as name:
        runtime = create_runtime(make_settings(SmsSettings, provider=name))
        async with running(runtime):
            await publish_to_stage(amqp_url, topo, STAGE, env)
            # Waits on this test's own provider, not on a process-wide counter
            # that other tests of send.sms also move; generous for a busy machine.
            await eventually(lambda: len(provider.calls) >= 3, within_s=30.0)
            assert runtime.engine is not None
            key = [("acme", env.deliveries[0].delivery_id)]
            for _ in range(300):
                records = await store.delivery_records(runtime.engine, key)
                if records and records[0].state == "sent":
                    break
                await asyncio.sleep(0.05)
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert provider.calls == [[env.deliveries[0].delivery_id]] * 3
    assert provider.sent_ids == [env.deliveries[0].delivery_id]
    assert [(e.decision.state, e.decision.reason, e.provider) for e in events] == [
        (State.DELIVERY_STATE_SENT, "sent", "scripted")
    ]
    assert (records[0].state, records[0].attempts) == ("sent", 3)


async def test_a_delivery_failing_transiently_every_time_ends_dead_in_the_dead_letter_queue(
    make_settings, amqp_url, namespace
):
    topo = _topology(namespace)
    provider = ScriptedProvider("transient")
    env = envelope("sms")
    with provider_registered("sms", provider) as name:
        async with running(create_runtime(make_settings(SmsSettings, provider=name))):
            await publish_to_stage(amqp_url, topo, STAGE, env)
            dead = await drain(amqp_url, topo.dead_letter_queue(STAGE), 1)
            await eventually(lambda: consumed(topo.queue(STAGE)) >= 3)
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert len(provider.calls) == 3  # max_attempts in the test settings
    assert dead[0].headers["x-sendmesh-reason"] == "max_attempts"
    assert dead[0].headers["x-sendmesh-attempt"] == 3
    assert dead[0].headers["x-sendmesh-stage"] == STAGE
    assert "503 from vendor" in str(dead[0].headers["x-sendmesh-error"])
    assert decode_envelope(dead[0].body).deliveries == env.deliveries
    assert [(e.decision.state, e.decision.reason) for e in events] == [
        (State.DELIVERY_STATE_DEAD, "max_attempts")
    ]


async def test_a_permanent_failure_fails_at_once_without_retry(make_settings, amqp_url, namespace):
    topo = _topology(namespace)
    provider = ScriptedProvider("permanent")
    env = envelope("sms")
    with provider_registered("sms", provider) as name:
        async with running(create_runtime(make_settings(SmsSettings, provider=name))):
            await publish_to_stage(amqp_url, topo, STAGE, env)
            await eventually(lambda: consumed(topo.queue(STAGE)) >= 1)
            waiting = [
                await queue_depth(amqp_url, q)
                for q in (topo.delay_queue(0), topo.dead_letter_queue(STAGE))
            ]
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))
        released = events_of(await take_all(amqp_url, topo.queue(topology.RELEASE)))

    assert len(provider.calls) == 1
    assert waiting == [0, 0]
    assert [(e.decision.state, e.decision.reason, e.decision.detail) for e in events] == [
        (State.DELIVERY_STATE_FAILED, "provider_error", "400 invalid recipient")
    ]
    # Its cap slot goes back: frequency hears of it on the release queue.
    assert [e.delivery_id for e in released] == [env.deliveries[0].delivery_id]


async def test_a_cancelled_intent_is_not_sent(make_settings, amqp_url, namespace):
    topo = _topology(namespace)
    provider = ScriptedProvider("sent")
    env = envelope("sms", users=("u1", "u2"))
    cancel = envelope_pb2.IntentCancelled(tenant_id="acme", intent_id=env.intent_id)
    cancel.at.CopyFrom(now_timestamp())
    with provider_registered("sms", provider) as name:
        runtime = create_runtime(make_settings(SmsSettings, provider=name))
        async with running(runtime):
            await publish_event(
                amqp_url,
                topo.events_exchange,
                topology.EVENTS_CANCELLED_KEY,
                envelope_pb2.ControlEvent(intent_cancelled=cancel).SerializeToString(),
            )
            await eventually(lambda: consumed(topo.queue(topology.control_stage("sms"))) >= 1)
            await publish_to_stage(amqp_url, topo, STAGE, env)
            await eventually(lambda: consumed(topo.queue(STAGE)) >= 1)
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert provider.calls == []
    assert sorted((e.user_id, e.decision.state, e.decision.reason) for e in events) == [
        ("u1", State.DELIVERY_STATE_CANCELLED, "cancelled"),
        ("u2", State.DELIVERY_STATE_CANCELLED, "cancelled"),
    ]


async def test_template_content_fails_as_template_not_found_without_calling_the_provider(
    make_settings, amqp_url, namespace
):
    topo = _topology(namespace)
    provider = ScriptedProvider("sent")
    env = envelope("sms")
    env.intent.content.template.template_id = "welcome"
    with provider_registered("sms", provider) as name:
        async with running(create_runtime(make_settings(SmsSettings, provider=name))):
            await publish_to_stage(amqp_url, topo, STAGE, env)
            await eventually(lambda: consumed(topo.queue(STAGE)) >= 1)
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert provider.calls == []
    assert [(e.decision.state, e.decision.reason) for e in events] == [
        (State.DELIVERY_STATE_FAILED, "template_not_found")
    ]


async def test_a_sent_delivery_counts_its_end_to_end_latency(make_settings, amqp_url, namespace):
    topo = _topology(namespace)
    before = sample("sendmesh_delivery_latency_seconds_count", channel="sms")
    provider = ScriptedProvider("sent")
    with provider_registered("sms", provider) as name:
        async with running(create_runtime(make_settings(SmsSettings, provider=name))):
            await publish_to_stage(amqp_url, topo, STAGE, envelope("sms", users=("u1", "u2")))
            await eventually(lambda: consumed(topo.queue(STAGE)) >= 1)

    assert sample("sendmesh_delivery_latency_seconds_count", channel="sms") == before + 2
