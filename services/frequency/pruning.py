"""A periodic delete of reservations no policy can count any more."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import store
from shared.clock import utcnow
from shared.logs import get_logger

log = get_logger(__name__)


class Pruner:
    """Every `interval_s` (0: never), one delete; replicas may overlap harmlessly."""

    def __init__(self, engine: AsyncEngine, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._run(), name="frequency:prune")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                pruned = await store.prune(self.engine, utcnow())
            except Exception as err:  # the next round tries again
                log.warning("prune_failed", error=repr(err))
                continue
            if pruned:
                log.info("reservations_pruned", count=pruned)
