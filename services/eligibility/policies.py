"""The tenants' quiet-hours policies as the consumer sees them: read once per
TTL, so a busy stage does not ask the database for them on every batch.

A change through SetQuietHours reaches the consumer within the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.eligibility import store
from services.eligibility.quiet_hours import QuietPolicy


class QuietHoursCache:
    def __init__(
        self,
        engine: AsyncEngine,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._clock = clock
        # tenant -> (policy or None for "none stored", when it was read)
        self._entries: dict[str, tuple[QuietPolicy | None, float]] = {}

    async def get_many(self, tenant_ids: Iterable[str]) -> dict[str, QuietPolicy | None]:
        """Every tenant's policy (None: it has none), reading the stale ones in one query."""
        wanted = set(tenant_ids)
        now = self._clock()
        stale = [t for t in wanted if self._is_stale(t, now)]
        if stale:
            found = await store.quiet_hours_of(self.engine, stale)
            for tenant in stale:
                self._entries[tenant] = (found.get(tenant), now)
        return {t: self._entries[t][0] for t in wanted}

    def _is_stale(self, tenant: str, now: float) -> bool:
        entry = self._entries.get(tenant)
        return entry is None or now - entry[1] >= self.ttl_s
