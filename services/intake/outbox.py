"""The outbox relay: publishes what intake committed, with confirms, then forgets it.

A commit hands its rows over at once, so the common path needs no read. The
sweep is for repair: at start-up it publishes everything left pending (a
crash between commit and confirm), and afterwards every `poll_s` whatever a
failed publish left behind. A crash between the confirm and the delete
publishes a row twice; downstream stages are idempotent by delivery id.

Deletes of confirmed rows are gathered and run together, at most
DELETE_EVERY_S after the confirm: under load this saves a transaction per
publish, and only widens that already-harmless republish window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterable
from datetime import timedelta

from services.intake.store import EVENTS, IntakeStore, OutboxMessage
from shared import metrics
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.clock import utcnow
from shared.logs import get_logger

log = get_logger(__name__)

DELETE_EVERY_S = 0.05


class OutboxRelay:
    def __init__(self, store: IntakeStore, bus: Bus, *, poll_s: float, batch: int) -> None:
        self._store = store
        self._bus = bus
        self._poll_s = poll_s
        self._batch = batch
        self._handed: list[OutboxMessage] = []
        self._confirmed: list[int] = []
        self._last_delete = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def hand_over(self, messages: Iterable[OutboxMessage]) -> None:
        """Rows just committed: publish them now, without reading them back."""
        self._handed.extend(messages)
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._guarded(self._delete_confirmed())

    async def _run(self) -> None:
        await self._guarded(self.sweep(min_age_s=0.0))  # repair what a crash left
        last_sweep = time.monotonic()
        while True:
            wait = DELETE_EVERY_S if self._confirmed else self._poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            await self._guarded(self._publish_handed())
            if time.monotonic() - self._last_delete >= DELETE_EVERY_S:
                await self._guarded(self._delete_confirmed())
            if time.monotonic() - last_sweep >= self._poll_s:
                await self._guarded(self.sweep(min_age_s=self._poll_s))
                metrics.OUTBOX_BACKLOG.set(await self._store.outbox_backlog())
                last_sweep = time.monotonic()

    async def _guarded(self, step: Awaitable[object]) -> None:
        try:
            await step
        except BrokerError as err:
            # The rows stay in the database; the sweep publishes them later.
            log.warning("outbox_publish_failed", error=err.detail)
        except Exception:
            log.exception("outbox_relay_failed")

    async def _publish_handed(self) -> None:
        while self._handed:
            rows, self._handed = self._handed[: self._batch], self._handed[self._batch :]
            await self._publish(rows)

    async def sweep(self, min_age_s: float) -> int:
        """Publish pending rows older than `min_age_s`; returns how many went out."""
        sent = 0
        while rows := await self._store.pending_outbox(
            self._batch, older_than=utcnow() - timedelta(seconds=min_age_s)
        ):
            await self._publish(rows)
            await self._delete_confirmed()  # the next read must not see them
            sent += len(rows)
        return sent

    async def _publish(self, rows: list[OutboxMessage]) -> None:
        await self._bus.publish([self._outbound(row) for row in rows])
        self._confirmed.extend(row.id for row in rows)

    async def _delete_confirmed(self) -> None:
        self._last_delete = time.monotonic()
        if self._confirmed:
            ids, self._confirmed = self._confirmed, []
            await self._store.delete_outbox(ids)

    def _outbound(self, row: OutboxMessage) -> Outbound:
        topo = self._bus.topology
        exchange = topo.events_exchange if row.target == EVENTS else topo.work_exchange
        return Outbound(exchange, row.routing_key, row.body, type=row.type)
