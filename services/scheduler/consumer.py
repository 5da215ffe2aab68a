"""The scheduler's two queues: deferred envelopes in, and control events
(cancelled intents, erased profiles)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import store
from services.scheduler.cancels import EVENTS_PER_BATCH, Canceller
from services.scheduler.deferrals import cancelled_events, chunks, hold
from shared.bus.publisher import Outbound, to_events
from shared.bus.topology import Topology


class DeferredConsumer:
    """Stores a batch of deferrals in one transaction; the broker acks after."""

    def __init__(
        self,
        engine: AsyncEngine,
        topo: Topology,
        stages: Collection[str],
        notify: Callable[[datetime], None],
    ) -> None:
        self._engine = engine
        self._topo = topo
        self._stages = stages
        self._notify = notify

    async def handle(self, batch: list[envelope_pb2.Envelope]) -> list[Outbound]:
        # A bad one raises PermanentError: the consumer retries the others
        # alone and dead-letters it.
        kept = await store.keep(self._engine, [hold(env, self._stages) for env in batch])
        if kept.stored:
            self._notify(min(h.due_at for h in kept.stored))
        events = cancelled_events(h.body for h in kept.refused)
        return [to_events(self._topo, b) for b in chunks(events, EVENTS_PER_BATCH)]


class ControlConsumer:
    """Cancelled intents lose their deferred deliveries; erased users leave
    every envelope they are held in (no event: nothing is to be said of them)."""

    def __init__(self, engine: AsyncEngine, canceller: Canceller) -> None:
        self._engine = engine
        self._canceller = canceller

    async def handle(self, batch: list[envelope_pb2.ControlEvent]) -> list[Outbound]:
        cancelled = set()
        erased = set()
        for event in batch:
            if event.WhichOneof("event") == "intent_cancelled":
                c = event.intent_cancelled
                cancelled.add((c.tenant_id, c.intent_id))
            elif event.WhichOneof("event") == "profile_erased":
                e = event.profile_erased
                erased.add((e.tenant_id, e.user_id))
        await self._canceller.cancel(cancelled)
        if erased:
            await store.erase_users(self._engine, erased)
        return []
