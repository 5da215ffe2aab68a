from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.eligibility.__main__ import create_runtime
from services.eligibility.settings import EligibilitySettings
from shared.bus import topology
from shared.bus.topology import Topology
from shared.envelopes import decode_envelope
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage

C = intent_pb2.Channel
S = intent_pb2.DeliveryState


def _envelope() -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="i1")
    env.intent.channels.extend([C.CHANNEL_INAPP, C.CHANNEL_EMAIL])
    env.intent.content.inline.inapp.title = "T"
    env.intent.content.inline.email.subject = "S"
    env.deliveries.add(delivery_id="d1", user_id="u1", channel=C.CHANNEL_INAPP)
    env.deliveries.add(delivery_id="d2", user_id="u1", channel=C.CHANNEL_EMAIL)
    env.profiles["u1"].user_id = "u1"
    return env


async def test_allowed_deliveries_go_onward_and_suppressed_ones_are_reported(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    async with running(create_runtime(make_settings(EligibilitySettings))):
        await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, _envelope())
        onward = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1)
        events = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)

    env = decode_envelope(onward[0].body)
    assert [d.delivery_id for d in env.deliveries] == ["d1"]
    assert env.deliveries[0].decisions[-1].reason == "allowed"
    batch = envelope_pb2.EventBatch.FromString(events[0].body)
    assert [(e.delivery_id, e.decision.state, e.decision.reason) for e in batch.events] == [
        ("d2", S.DELIVERY_STATE_SUPPRESSED, "no_contact_point")
    ]


async def test_undecodable_message_goes_to_dead_letters_and_others_flow(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    async with running(create_runtime(make_settings(EligibilitySettings))):
        await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, b"\xff\xfe not a protobuf")
        await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, _envelope())
        dead = await drain(amqp_url, topo.dead_letter_queue(topology.ELIGIBILITY), 1)
        onward = await drain(amqp_url, topo.queue(topology.FREQUENCY), 1)

    assert dead[0].headers["x-sendmesh-reason"] == "undecodable"
    assert len(onward) == 1
