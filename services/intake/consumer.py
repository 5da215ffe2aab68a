"""events.intake queue -> delivery status and history in intake's store."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2

from services.intake.store import IntakeStore
from shared.bus.publisher import Outbound


def decode_events(body: bytes) -> envelope_pb2.EventBatch:
    return envelope_pb2.EventBatch.FromString(body)


class EventsConsumer:
    def __init__(self, store: IntakeStore) -> None:
        self._store = store

    async def handle(self, batch: list[envelope_pb2.EventBatch]) -> list[Outbound]:
        await self._store.apply_events([e for events in batch for e in events.events])
        return []
