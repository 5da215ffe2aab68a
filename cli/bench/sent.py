"""Watches the events exchange for SENT deliveries, as the bench's finish line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bus_admin import CONNECT_TIMEOUT_S
from shared.bus.topology import EVENTS_DELIVERY_KEY, Topology

SENT = intent_pb2.DELIVERY_STATE_SENT


class SentWatcher:
    """An exclusive queue bound to <ns>.events (`delivery`): intent id -> sent time."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self._url = amqp_url
        self._topology = Topology(namespace)
        self._connection: AbstractRobustConnection | None = None
        # Epoch seconds of each intent's first SENT decision (the mesh's clock).
        self.sent_at: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": "sendmesh-bench-events"},
        )
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=1000)
        # Declared as the services declare it, in case the bench is first.
        events = await channel.declare_exchange(
            self._topology.events_exchange, ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(events, routing_key=EVENTS_DELIVERY_KEY)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        batch = envelope_pb2.EventBatch.FromString(message.body)
        for event in batch.events:
            if event.decision.state == SENT and event.intent_id not in self.sent_at:
                at = event.decision.at
                self.sent_at[event.intent_id] = at.seconds + at.nanos / 1e9
        self._changed.set()

    def count_sent(self, intent_ids: Iterable[str]) -> int:
        return sum(1 for i in intent_ids if i in self.sent_at)

    async def wait_changed(self, timeout_s: float) -> None:
        """Return on the next event, or after `timeout_s`."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except TimeoutError:
            return
        self._changed.clear()

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
