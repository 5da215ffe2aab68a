"""The outbox relay: publishes what intake committed, with confirms, then forgets it.

Woken by every commit, and sweeping every `poll_s` to repair what a crash
or a broker outage left behind. A crash between the confirm and the delete
publishes a row twice; downstream stages are idempotent by delivery id.
"""

from __future__ import annotations

import asyncio

from services.intake.store import EVENTS, IntakeStore, OutboxMessage
from shared import metrics
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.logs import get_logger

log = get_logger(__name__)


class OutboxRelay:
    def __init__(self, store: IntakeStore, bus: Bus, *, poll_s: float, batch: int) -> None:
        self._store = store
        self._bus = bus
        self._poll_s = poll_s
        self._batch = batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.relay_pending()
            except BrokerError as err:
                log.warning("outbox_publish_failed", error=err.detail)
            except Exception:
                log.exception("outbox_relay_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
            except TimeoutError:
                metrics.OUTBOX_BACKLOG.set(await self._store.outbox_backlog())
            self._wake.clear()

    async def relay_pending(self) -> int:
        """Publish everything pending; returns how many messages went out."""
        sent = 0
        while True:
            self._wake.clear()
            rows = await self._store.pending_outbox(self._batch)
            if not rows:
                return sent
            await self._bus.publish([self._outbound(row) for row in rows])
            await self._store.delete_outbox([row.id for row in rows])
            sent += len(rows)

    def _outbound(self, row: OutboxMessage) -> Outbound:
        topo = self._bus.topology
        exchange = topo.events_exchange if row.target == EVENTS else topo.work_exchange
        return Outbound(exchange, row.routing_key, row.body, type=row.type)
