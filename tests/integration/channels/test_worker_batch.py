"""ChannelWorker.handle on one batch, against SQLite and PostgreSQL: what it
sends and what it hands back to publish (nothing is published here)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import store
from services.channels.provider import OutgoingMessage, Provider, SendResult
from services.channels.worker import ChannelWorker
from shared.bus.publisher import ATTEMPT_HEADER, Bus, Outbound
from shared.bus.topology import Topology
from shared.errors import TransientError
from tests.integration.channels.support import ScriptedProvider, envelope

State = intent_pb2.DeliveryState
TOPOLOGY = Topology("batch", (0.2, 0.5, 1.0))


class VendorDown:
    """A provider whose whole call fails, asking to come back in 0.4 s."""

    name = "down"

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        raise TransientError("connection refused", reason="provider_error", retry_after_s=0.4)


class Forgetful:
    """A provider that answers for no message at all."""

    name = "forgetful"

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return []


@pytest.fixture
async def engine(store_engine) -> AsyncEngine:
    return await store_engine(store.TABLES)


def _worker(engine: AsyncEngine, provider: Provider) -> ChannelWorker:
    # An unconnected Bus: handle() only names queues, the consumer publishes.
    bus = Bus("amqp://unused/", TOPOLOGY, "test")
    return ChannelWorker(bus, engine, provider, "sms", max_attempts=3)


def _events(outs: list[Outbound]) -> list[envelope_pb2.DeliveryEvent]:
    batches = [o for o in outs if o.exchange == TOPOLOGY.events_exchange]
    return [e for o in batches for e in envelope_pb2.EventBatch.FromString(o.body).events]


async def test_the_same_envelope_twice_in_one_batch_is_sent_once(engine):
    provider = ScriptedProvider("sent")
    env = envelope("sms")
    outs = await _worker(engine, provider).handle([env, env])

    assert provider.calls == [[env.deliveries[0].delivery_id]]
    assert [e.decision.state for e in _events(outs)] == [State.DELIVERY_STATE_SENT]


async def test_a_vendor_outage_sends_every_delivery_to_a_delay_queue_long_enough(engine):
    env = envelope("sms", users=("u1", "u2"))
    outs = await _worker(engine, VendorDown()).handle([env])

    [retry] = outs  # no events: a retry is not a new state
    # Step 1 (0.5 s) is the first at least as long as the 0.4 s asked for.
    assert (retry.exchange, retry.routing_key) == (TOPOLOGY.delay_queue(1), "send.sms")
    assert retry.headers[ATTEMPT_HEADER] == 2
    assert envelope_pb2.Envelope.FromString(retry.body).deliveries == env.deliveries


async def test_a_delivery_the_provider_did_not_answer_for_is_retried(engine):
    env = envelope("sms")
    outs = await _worker(engine, Forgetful()).handle([env])

    assert [(o.exchange, o.routing_key) for o in outs] == [(TOPOLOGY.delay_queue(0), "send.sms")]
