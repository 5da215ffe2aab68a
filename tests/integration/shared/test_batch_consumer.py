"""shared/bus/consumer.py's batching on the real broker."""

from __future__ import annotations

import asyncio

from shared.bus import topology
from shared.bus.consumer import BatchConsumer
from shared.bus.publisher import Bus, Outbound
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import publish_to_stage, queue_depth

STAGE = topology.PLAN
BODY = 400_000  # bytes: a large fan-out envelope


async def test_a_batch_stops_growing_at_its_byte_budget_not_only_at_its_count(
    amqp_url: str, namespace: str
) -> None:
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    bus = Bus(amqp_url, topo, "test-batch-bytes")
    await bus.connect()
    await bus.declare()
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
