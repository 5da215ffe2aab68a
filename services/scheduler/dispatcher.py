"""The due-loop: puts deferred envelopes back on their stage's queue when due.

Each pass claims due rows a batch at a time, publishes them with confirms and
deletes them in the claiming transaction. A crash between the confirm and
the commit publishes them again after restart: downstream stages dedup by
delivery id, so that repeat is harmless.

It sleeps until the soonest due time it knows of, at most `poll_s`: rows
stored by this process wake it (`notify`); rows of other replicas or of an
earlier process are found by the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import store
from shared import metrics
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.clock import utcnow
from shared.logs import get_logger

log = get_logger(__name__)

ENVELOPE_TYPE = envelope_pb2.Envelope.DESCRIPTOR.full_name
# A failed pass (broker or database trouble) is retried after this pause.
RETRY_PAUSE_S = 1.0
PENDING_REFRESH_S = 1.0
# Rows due but not claimable (another replica holds them) must not make us spin.
MIN_SLEEP_S = 0.05
STOP_WAIT_S = 10.0


class Dispatcher:
    def __init__(self, engine: AsyncEngine, bus: Bus, *, poll_s: float, batch: int) -> None:
        self._engine = engine
        self._bus = bus
        self._poll_s = poll_s
        self._batch = batch
        self._soonest: datetime | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._counted_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def notify(self, due_at: datetime) -> None:
        """A row due at `due_at` was stored: wake up for it if it is the soonest."""
        if self._soonest is None or due_at < self._soonest:
            self._soonest = due_at
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler-dispatch")

    async def stop(self) -> None:
        """Finish the pass under way (its publishes and deletes), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_WAIT_S)
        except TimeoutError:
            self._task.cancel()  # the open claim rolls back: its rows stay stored
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.dispatch_due()
                self._soonest = await store.next_due_at(self._engine)
                await self._refresh_pending()
            except BrokerError as err:
                log.warning("dispatch_publish_failed", error=err.detail)
                await self._pause(RETRY_PAUSE_S)
                continue
            except Exception:
                log.exception("dispatch_failed")
                await self._pause(RETRY_PAUSE_S)
                continue
            await self._pause(self._sleep_s())

    def _sleep_s(self) -> float:
        if self._soonest is None:
            return self._poll_s
        until_due = (self._soonest - utcnow()).total_seconds()
        return min(max(until_due, MIN_SLEEP_S), self._poll_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def dispatch_due(self) -> int:
        """Put back everything due now; returns how many envelopes went out."""
        sent = 0
        while not self._stopping:
            async with store.claim_due(self._engine, utcnow(), self._batch) as rows:
                if rows:
                    await self._bus.publish([self._outbound(r) for r in rows])
                    _observe_lag(rows)
            sent += len(rows)
            if len(rows) < self._batch:
                break
        return sent

    def _outbound(self, row: store.Row) -> Outbound:
        return Outbound(self._bus.topology.work_exchange, row.stage, row.body, ENVELOPE_TYPE)

    async def _refresh_pending(self) -> None:
        if time.monotonic() - self._counted_at >= PENDING_REFRESH_S:
            metrics.DEFERRED_PENDING.set(await store.pending_deliveries(self._engine))
            self._counted_at = time.monotonic()


def _observe_lag(rows: list[store.Row]) -> None:
    now = utcnow()
    for row in rows:
        lag = max((now - row.due_at).total_seconds(), 0.0)
        for _ in range(row.size):
            metrics.SCHEDULER_LAG.observe(lag)
