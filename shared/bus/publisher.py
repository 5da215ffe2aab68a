"""The broker connection and publishing with pipelined publisher confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractRobustConnection, DeliveryMode
from aiormq import spec
from aiormq.exceptions import ChannelInvalidStateError
from google.protobuf.message import Message

from shared import metrics, tracing
from shared.bus import topology
from shared.bus.topology import Topology
from shared.errors import TransientError
from shared.logs import get_logger

log = get_logger(__name__)

ATTEMPT_HEADER = "x-sendmesh-attempt"
REASON_HEADER = "x-sendmesh-reason"
ERROR_HEADER = "x-sendmesh-error"
STAGE_HEADER = "x-sendmesh-stage"
# When the message was dead-lettered: milliseconds since the epoch (UTC).
DEAD_AT_HEADER = "x-sendmesh-dead-at"
CONTENT_TYPE = "application/x-protobuf"
PERSISTENT = int(DeliveryMode.PERSISTENT)
NOT_PERSISTENT = int(DeliveryMode.NOT_PERSISTENT)


@dataclass(frozen=True)
class Outbound:
    """One message to publish: where, what, and with which headers."""

    exchange: str
    routing_key: str
    body: bytes
    type: str = ""
    headers: dict[str, str | int] = field(default_factory=dict)
    persistent: bool = True
    # Per-message TTL (a jittered retry in a delay queue); the broker drops
    # it when the message is dead-lettered onward, so it expires only once.
    expiration_s: float | None = None


def to_stage(topo: Topology, stage: str, msg: Message, **headers: str | int) -> Outbound:
    return Outbound(
        topo.work_exchange, stage, msg.SerializeToString(), msg.DESCRIPTOR.full_name, headers
    )


def to_events(topo: Topology, msg: Message, key: str = topology.EVENTS_DELIVERY_KEY) -> Outbound:
    return Outbound(topo.events_exchange, key, msg.SerializeToString(), msg.DESCRIPTOR.full_name)


class BrokerError(TransientError):
    """The broker did not confirm a publish (closed, nacked, unroutable, timed out)."""

    reason = "broker"


class Bus:
    """One robust connection per process, one confirming channel to publish on."""

    def __init__(self, url: str, topo: Topology, name: str, publish_timeout_s: float = 15.0):
        self.url = url
        self.topology = topo
        self.name = name
        self.publish_timeout_s = publish_timeout_s
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None

    async def connect(self) -> None:
        self.connection = await aio_pika.connect_robust(
            self.url, client_properties={"connection_name": self.name}
        )
        self._channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True
        )

    async def declare(self, services: tuple[str, ...] = ()) -> None:
        await topology.declare(self.publish_channel, self.topology, services)

    @property
    def publish_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("bus not connected")
        return self._channel

    @property
    def is_connected(self) -> bool:
        conn = self.connection
        return conn is not None and not conn.is_closed and conn.connected.is_set()

    async def consume_channel(self, prefetch: int) -> AbstractChannel:
        if self.connection is None:
            raise RuntimeError("bus not connected")
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, outs: Sequence[Outbound]) -> None:
        """Publish all, confirms in flight together; return when every one is confirmed."""
        if not outs:
            return
        results = await asyncio.gather(
            *(self._publish_one(o) for o in outs), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        metrics.PUBLISHED.labels("ok").inc(len(outs) - len(failures))
        if failures:
            metrics.PUBLISHED.labels("failed").inc(len(failures))
            raise BrokerError(f"{len(failures)}/{len(outs)} publishes unconfirmed: {failures[0]!r}")

    async def _publish_one(self, out: Outbound) -> None:
        headers: dict[str, Any] = dict(out.headers)
        # With tracing on: a PRODUCER span around the publish and its confirm,
        # its context added to the headers.
        with tracing.publishing(out.exchange, out.routing_key, out.type, out.body, headers):
            await self._publish_confirmed(out, headers)

    async def _publish_confirmed(self, out: Outbound, headers: dict[str, Any]) -> None:
        # Straight to the channel's aiormq underlay, as aio-pika's
        # Exchange.publish itself does (closed check included), without
        # building an aio_pika.Message first: about a tenth of a publish's
        # CPU, on every message of every stage. aiormq raises on a nack, a
        # return (on_return_raises) and the timeout, as aio-pika did.
        robust = self.publish_channel
        if robust.is_closed:
            raise ChannelInvalidStateError(f"{robust!r} closed")
        channel = await robust.get_underlay_channel()
        properties = spec.Basic.Properties(
            headers=headers,
            content_type=CONTENT_TYPE,
            message_type=out.type or None,
            delivery_mode=PERSISTENT if out.persistent else NOT_PERSISTENT,
            expiration=None if out.expiration_s is None else str(int(out.expiration_s * 1000)),
        )
        await channel.basic_publish(
            out.body,
            exchange=out.exchange,
            routing_key=out.routing_key,
            properties=properties,
            mandatory=True,
            timeout=self.publish_timeout_s,
        )

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
            self._channel = None
