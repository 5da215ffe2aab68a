"""shared/bus/consumer.py's batching on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from shared.bus import topology
from shared.bus.consumer import BatchConsumer
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import declared, drain, publish_to_stage, queue_depth

STAGE = topology.PLAN
BODY = 400_000  # bytes: a large fan-out envelope


async def test_a_batch_stops_growing_at_its_byte_budget_not_only_at_its_count(
    amqp_url: str, namespace: str
) -> None:
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    bus = await declared(Bus(amqp_url, topo, "test-batch-bytes"))
    for i in range(8):
        await publish_to_stage(amqp_url, topo, STAGE, bytes([i]) * BODY)
    # Everything is waiting before the consumer starts, so count alone would
    # make it one batch of 8.
    assert await queue_depth(amqp_url, topo.queue(STAGE)) == 8
    seen: list[list[int]] = []
    done = asyncio.Event()

    async def handle(batch: list[bytes]) -> list[Outbound]:
        seen.append([b[0] for b in batch])
        if sum(len(s) for s in seen) == 8:
            done.set()
        return []

    consumer: BatchConsumer[bytes] = BatchConsumer(
        bus, STAGE, bytes, handle, batch_size=256, max_batch_bytes=1_000_000
    )
    await consumer.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        await consumer.stop()
        await bus.close()

    assert sorted(i for batch in seen for i in batch) == list(range(8))
    # 400 kB + 400 kB is under 1 MB, the third crosses it: at most 3 a batch.
    assert max(len(batch) for batch in seen) <= 3
    assert len(seen) >= 3


def _decode_or_refuse(body: bytes) -> bytes:
    if body == b"undecodable":
        raise ValueError("not a message of this stage")
    return body


async def test_a_batch_is_acked_once_around_a_message_dead_lettered_alone(
    amqp_url: str, namespace: str
) -> None:
    """One multiple-ack settles the batch, skipping over the message that was
    dead-lettered (and acked) on its own; the channel stays open."""
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    bus = await declared(Bus(amqp_url, topo, "test-batch-ack"))
    for body in (b"first", b"undecodable", b"last"):
        await publish_to_stage(amqp_url, topo, STAGE, body)
    assert await queue_depth(amqp_url, topo.queue(STAGE)) == 3
    seen: list[list[bytes]] = []

    async def handle(batch: list[bytes]) -> list[Outbound]:
        seen.append(batch)
        return []

    consumer: BatchConsumer[bytes] = BatchConsumer(bus, STAGE, _decode_or_refuse, handle)
    await consumer.start()
    try:
        dead = await drain(amqp_url, topo.dead_letter_queue(STAGE), expect=1)
        await asyncio.sleep(0.5)  # time for a wrong ack to close the channel
    finally:
        await consumer.stop()
        await bus.close()

    assert [m.body for m in dead] == [b"undecodable"]
    # Handled once: a closed channel would have redelivered them.
    assert seen == [[b"first", b"last"]]
    # The consumer has closed its channel; anything unacked would be back.
    assert await queue_depth(amqp_url, topo.queue(STAGE)) == 0


class HeldBus(Bus):
    """The real bus, except that the publish of `held` waits for `release`
    and then fails, once: a confirm that comes late and then never."""

    def __init__(self, *args: Any, held: bytes, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = held
        self.release = asyncio.Event()
        self.events: list[str] = []
        self.changed = asyncio.Event()
        self._failed = False

    def _note(self, event: str) -> None:
        self.events.append(event)
        self.changed.set()

    async def publish(self, outs: Sequence[Outbound]) -> None:
        body = outs[0].body if outs else b""
        if body == self.held and not self._failed:
            self._note(f"{body.decode()} held")
            await self.release.wait()
            self._failed = True
            self._note(f"{body.decode()} failed")
            raise BrokerError("injected: the confirm never came")
        await super().publish(outs)
        self._note(f"{body.decode()} confirmed")


async def test_a_later_batch_confirmed_first_does_not_ack_an_earlier_one(
    amqp_url: str, namespace: str
) -> None:
    """Batch A's publish hangs, batch B's is confirmed, then A's fails: A must
    come back (requeued), not be swept up by B's multiple-ack."""
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    bus = await declared(HeldBus(amqp_url, topo, "test-batch-order", held=b"A-out"))
    seen: list[bytes] = []

    async def handle(batch: list[bytes]) -> list[Outbound]:
        seen.extend(batch)
        bus.changed.set()
        return [Outbound(topo.work_exchange, topology.ELIGIBILITY, b + b"-out") for b in batch]

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not condition():
                await bus.changed.wait()
                bus.changed.clear()

    consumer: BatchConsumer[bytes] = BatchConsumer(bus, STAGE, bytes, handle, batch_size=1)
    await consumer.start()
    try:
        await publish_to_stage(amqp_url, topo, STAGE, b"A")
        await until(lambda: bus.events == ["A-out held"])
        await publish_to_stage(amqp_url, topo, STAGE, b"B")
        await until(lambda: "B-out confirmed" in bus.events)
        await asyncio.sleep(0.3)  # time for B's ack to go out, were it not held back
        bus.release.set()
        await until(lambda: seen.count(b"A") == 2 and "A-out confirmed" in bus.events)
    finally:
        await consumer.stop()
        await bus.close()

    # The fault happened as staged: A's publish hung past B's confirm, then failed.
    assert bus.events == ["A-out held", "B-out confirmed", "A-out failed", "A-out confirmed"]
    assert seen == [b"A", b"B", b"A"]
    assert await queue_depth(amqp_url, topo.queue(STAGE)) == 0
    onward = await drain(amqp_url, topo.queue(topology.ELIGIBILITY), expect=2)
    assert sorted(m.body for m in onward) == [b"A-out", b"B-out"]
