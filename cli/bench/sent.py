"""Watches the events exchange: the bench's finish line.

For every intent: when it was first SENT, how it ended (the first final
decision of its delivery: sent, suppressed, capped...), and for fan-outs the
distinct deliveries SENT with the first and last SENT time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bus_admin import CONNECT_TIMEOUT_S
from shared.bus.topology import EVENTS_DELIVERY_KEY, Topology

S = intent_pb2.DeliveryState
SENT = S.DELIVERY_STATE_SENT
# A delivery in one of these states goes no further (SCHEDULED comes back).
FINAL = frozenset(
    {
        SENT,
        S.DELIVERY_STATE_SUPPRESSED,
        S.DELIVERY_STATE_CAPPED,
        S.DELIVERY_STATE_FAILED,
        S.DELIVERY_STATE_DEAD,
        S.DELIVERY_STATE_CANCELLED,
        S.DELIVERY_STATE_SKIPPED,
        S.DELIVERY_STATE_EXPIRED,
    }
)


@dataclass
class Sends:
    """One intent's distinct SENT deliveries and the span they were sent in."""

    delivered: set[str] = field(default_factory=set)
    first_sent_at: float = 0.0
    last_sent_at: float = 0.0

    def add(self, delivery_id: str, at: float) -> None:
        if delivery_id in self.delivered:
            return  # reported again after a redelivery: one delivery
        self.delivered.add(delivery_id)
        self.first_sent_at = min(self.first_sent_at or at, at)
        self.last_sent_at = max(self.last_sent_at, at)


class SentWatcher:
    """An exclusive queue bound to <ns>.events (`delivery`)."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self._url = amqp_url
        self._topology = Topology(namespace)
        self._connection: AbstractRobustConnection | None = None
        # Epoch seconds of each intent's first SENT decision (the mesh's clock).
        self.sent_at: dict[str, float] = {}
        # Intent id -> (final state, epoch seconds) of the first final decision.
        self.ended: dict[str, tuple[int, float]] = {}
        # Intent id -> the reason code of that first final decision (why it failed).
        self.end_reasons: dict[str, str] = {}
        # Intent id -> its SENT deliveries (what the fan-out phase counts).
        self.sends: dict[str, Sends] = {}
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
        self.observe(envelope_pb2.EventBatch.FromString(message.body))
        self._changed.set()

    def observe(self, batch: envelope_pb2.EventBatch) -> None:
        for event in batch.events:
            state = event.decision.state
            if state not in FINAL:
                continue
            at = event.decision.at.seconds + event.decision.at.nanos / 1e9
            intent = event.intent_id
            if intent not in self.ended:
                self.ended[intent] = (state, at)
                self.end_reasons[intent] = event.decision.reason
            if state == SENT:
                self.sent_at.setdefault(intent, at)
                self.sends.setdefault(intent, Sends()).add(event.delivery_id, at)

    def delivered(self, intent_id: str) -> int:
        sends = self.sends.get(intent_id)
        return 0 if sends is None else len(sends.delivered)

    def count_sent(self, intent_ids: Iterable[str]) -> int:
        return sum(1 for i in intent_ids if i in self.sent_at)

    def count_ended(self, intent_ids: Iterable[str]) -> int:
        return sum(1 for i in intent_ids if i in self.ended)

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
