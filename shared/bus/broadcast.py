"""Per-replica fan-out for live streams (WatchIntent, WatchInbox).

Every replica binds its own exclusive, auto-deleted queue to an exchange and
hands what arrives to the local subscribers of a key. Live views only: the
durable record is always read from the database first.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.bus.publisher import Bus
from shared.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

MAX_QUEUED_PER_SUBSCRIBER = 1000


class Broadcast(Generic[T]):
    """`split(body)` yields (key, item) pairs; subscribers of `key` get `item`."""

    def __init__(
        self,
        bus: Bus,
        exchange: str,
        routing_key: str,
        split: Callable[[bytes], Iterable[tuple[Hashable, T]]],
    ) -> None:
        self._bus = bus
        self._exchange = exchange
        self._routing_key = routing_key
        self._split = split
        self._subscribers: dict[Hashable, set[asyncio.Queue[T]]] = defaultdict(set)
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        self._channel = await self._bus.consume_channel(prefetch=1000)
        queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await self._channel.get_exchange(self._exchange, ensure=False)
        await queue.bind(exchange, routing_key=self._routing_key)
        await queue.consume(self._receive, no_ack=True)

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        if not self._subscribers:
            return  # nobody watching: do not even decode
        try:
            pairs = list(self._split(message.body))
        except Exception as err:
            log.warning("broadcast_undecodable", exchange=self._exchange, error=repr(err))
            return
        for key, item in pairs:
            for queue in self._subscribers.get(key, ()):
                if queue.qsize() < MAX_QUEUED_PER_SUBSCRIBER:
                    queue.put_nowait(item)

    @asynccontextmanager
    async def subscribe(self, key: Hashable) -> AsyncIterator[asyncio.Queue[T]]:
        queue: asyncio.Queue[T] = asyncio.Queue()
        self._subscribers[key].add(queue)
        try:
            yield queue
        finally:
            subs = self._subscribers.get(key)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subscribers[key]
