"""Cancelling an intent's deferred deliveries: from the control queue and from
CancelDeferred alike.

The CANCELLED events are published, with confirms, inside the transaction
that deletes the rows: a crash before the commit keeps the rows, and the
cancel (redelivered, or retried by the caller) reports them again.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import store
from services.scheduler.deferrals import cancelled_events, chunks
from services.scheduler.store import Key
from shared.bus.publisher import Bus, to_events
from shared.clock import utcnow

EVENTS_PER_BATCH = 1000


class Canceller:
    def __init__(self, engine: AsyncEngine, bus: Bus, *, batch: int, retention_s: float) -> None:
        self._engine = engine
        self._bus = bus
        self._batch = batch
        self._retention = timedelta(seconds=retention_s)

    async def cancel(self, intents: Collection[Key]) -> int:
        """Drop every deferred delivery of these (tenant, intent)s, report each
        one CANCELLED, and refuse their later deferrals; returns how many."""
        if not intents:
            return 0
        # First, so a deferral arriving from now on is refused, not stored.
        await store.remember_cancelled(self._engine, intents, utcnow() - self._retention)
        removed = 0
        while True:
            async with store.take_intents(self._engine, intents, self._batch) as rows:
                removed += await self._report([r.body for r in rows])
            if len(rows) < self._batch:
                return removed

    async def _report(self, bodies: list[bytes]) -> int:
        """Publish CANCELLED events for the deliveries of these envelopes."""
        events = cancelled_events(bodies)
        topo = self._bus.topology
        await self._bus.publish([to_events(topo, b) for b in chunks(events, EVENTS_PER_BATCH)])
        return len(events)
