"""cli/dead_letters.py against the real broker: reading loses nothing and keeps
the order, replay moves with confirms, and a replay the broker refuses leaves
the message where it was."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from typer.testing import CliRunner

from cli import dead_letters
from cli.bus_admin import delete_queues
from cli.main import app
from cli.mesh import SERVICE_NAMES
from shared.bus import topology
from shared.bus.consumer import dead_letter
from shared.bus.publisher import BrokerError, Bus
from shared.bus.topology import QUORUM, Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain, queue_depth

STAGE = topology.send_stage("sms")


def sms_envelope(n: int) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id=f"i{n}")
    env.deliveries.add(delivery_id=f"d{n}", user_id=f"u{n}", channel=intent_pb2.CHANNEL_SMS)
    return env


@pytest.fixture
async def bus(amqp_url: str, namespace: str) -> AsyncIterator[Bus]:
    connected = Bus(amqp_url, Topology(namespace, TEST_RETRY_DELAYS), "test-dlq")
    await connected.connect()
    await connected.declare(SERVICE_NAMES)
    yield connected
    await connected.close()


async def bury(
    bus: Bus,
    stage: str,
    *bodies: bytes,
    reason: str = "max_attempts",
    type_: str = envelope_pb2.Envelope.DESCRIPTOR.full_name,
) -> None:
    """Dead-letter `bodies` the way a consumer does."""
    await bus.publish([dead_letter(bus, stage, b, type_, 3, reason, "http 503") for b in bodies])


async def test_reading_a_dead_letter_queue_leaves_every_message_in_place_and_in_order(
    amqp_url, bus
):
    topo = bus.topology
    await bury(bus, STAGE, *(sms_envelope(n).SerializeToString() for n in range(5)))

    first = await dead_letters.read(amqp_url, topo, STAGE, 3)
    everything = await dead_letters.read(amqp_url, topo, STAGE, 100)
    again = await dead_letters.read(amqp_url, topo, STAGE, 100)

    ids = [envelope_pb2.Envelope.FromString(letter.body).intent_id for letter in everything]
    assert ids == ["i0", "i1", "i2", "i3", "i4"]
    assert [letter.body for letter in first] == [letter.body for letter in everything[:3]]
    assert [letter.body for letter in again] == [letter.body for letter in everything]
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 5
    assert {(letter.reason, letter.attempts) for letter in everything} == {("max_attempts", 3)}


async def test_the_overview_counts_each_queue_and_dates_its_oldest_message(amqp_url, bus):
    topo = bus.topology
    before = datetime.now(UTC)
    await bury(bus, STAGE, sms_envelope(1).SerializeToString(), sms_envelope(2).SerializeToString())
    await bury(bus, topology.ELIGIBILITY, sms_envelope(3).SerializeToString())

    summaries = {s.stage: s for s in await dead_letters.overview(amqp_url, topo)}

    assert (summaries[STAGE].count, summaries[topology.ELIGIBILITY].count) == (2, 1)
    assert summaries["send.email"].count == 0 and summaries["send.email"].oldest_at is None
    oldest = summaries[STAGE].oldest_at
    assert oldest is not None and before.replace(microsecond=0) <= oldest <= datetime.now(UTC)
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 2


async def test_replay_moves_deliveries_to_eligibility_and_empties_the_dead_letter_queue(
    amqp_url, bus
):
    topo = bus.topology
    await bury(bus, STAGE, *(sms_envelope(n).SerializeToString() for n in range(3)))

    report = await dead_letters.replay(amqp_url, topo, STAGE, limit=100)

    assert len(report.replayed) == 3 and report.kept == []
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 0
    moved = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), 3)
    assert sorted(envelope_pb2.Envelope.FromString(m.body).intent_id for m in moved) == [
        "i0",
        "i1",
        "i2",
    ]
    assert all(m.headers.get("x-sendmesh-replayed-from") == STAGE for m in moved)
    assert all("x-sendmesh-attempt" not in m.headers for m in moved)
    events = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 3)
    replayed = [envelope_pb2.EventBatch.FromString(m.body).events[0] for m in events]
    assert {(e.decision.stage, e.decision.reason) for e in replayed} == {("dlq", "replayed")}


async def test_a_dry_run_and_the_reason_filter_leave_what_they_do_not_replay(amqp_url, bus):
    topo = bus.topology
    await bury(bus, STAGE, sms_envelope(1).SerializeToString())
    await bury(bus, STAGE, sms_envelope(2).SerializeToString(), reason="rate_limited")
    await bury(bus, STAGE, b"\xff\x00 not a protobuf", reason="undecodable")

    dry = await dead_letters.replay(amqp_url, topo, STAGE, limit=100, dry_run=True)
    assert len(dry.replayed) == 2 and len(dry.kept) == 1
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 3

    only = await dead_letters.replay(amqp_url, topo, STAGE, limit=100, reason="rate_limited")
    assert [envelope_pb2.Envelope.FromString(r.body).intent_id for r in only.replayed] == ["i2"]
    assert sorted(why for _, why in only.kept) == [
        "reason is max_attempts, not rate_limited",
        "reason is undecodable, not rate_limited",
    ]
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 2
    assert await queue_depth(amqp_url, topo.queue(topology.ELIGIBILITY)) == 1


async def test_a_replay_the_broker_does_not_confirm_leaves_the_message_dead_lettered(amqp_url):
    # A namespace of its own holding only a dead-letter queue: its work queue
    # does not exist, so the replay's publish comes back unroutable.
    topo = Topology("dlqfault" + uuid.uuid4().hex[:8], TEST_RETRY_DELAYS)
    stage = topology.control_stage("sms")
    dead = topo.dead_letter_queue(stage)
    connection = await aio_pika.connect(amqp_url)
    try:
        async with connection:
            channel = await connection.channel()
            await channel.declare_exchange(topo.work_exchange, "direct", durable=True)
            await channel.declare_exchange(topo.events_exchange, "topic", durable=True)
            await channel.declare_queue(dead, durable=True, arguments=QUORUM)
        bus = Bus(amqp_url, topo, "test-dlq-fault")
        await bus.connect()
        try:
            cancelled = envelope_pb2.ControlEvent()
            cancelled.intent_cancelled.intent_id = "i1"
            control_type = envelope_pb2.ControlEvent.DESCRIPTOR.full_name
            await bury(bus, stage, cancelled.SerializeToString(), type_=control_type)
        finally:
            await bus.close()

        with pytest.raises(BrokerError) as refused:
            await dead_letters.replay(amqp_url, topo, stage, limit=10)

        assert "unconfirmed" in str(refused.value)  # the fault really happened
        assert await queue_depth(amqp_url, dead) == 1
    finally:
        await delete_queues(amqp_url, [dead])
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in (topo.work_exchange, topo.events_exchange):
                await channel.exchange_delete(name)


async def test_the_cli_lists_and_replays_a_stage(amqp_url, bus):
    topo = bus.topology
    await bury(bus, STAGE, sms_envelope(7).SerializeToString())
    common = ["--amqp-url", amqp_url, "--namespace", topo.namespace]
    runner = CliRunner()

    listed = await asyncio.to_thread(
        runner.invoke, app, ["dlq", "list", "--stage", STAGE, "--json", *common]
    )
    replayed = await asyncio.to_thread(runner.invoke, app, ["dlq", "replay", STAGE, *common])

    assert listed.exit_code == 0, listed.output
    assert '"intent_ids": [\n      "i7"' in listed.stdout
    assert replayed.exit_code == 0, replayed.output
    assert f"replayed 1 from {topo.dead_letter_queue(STAGE)}" in replayed.stdout
    assert await queue_depth(amqp_url, topo.dead_letter_queue(STAGE)) == 0
