"""release queue -> cap slots given back.

Channel workers publish an EventBatch of the deliveries that failed for good
(invalid address, provider refusal, dead-lettered): a message that was never
delivered must not use up the recipient's cap. One delete per batch.
"""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import store
from shared import envelopes
from shared.bus.publisher import Outbound

SENT = envelopes.State.DELIVERY_STATE_SENT


def decode_release(body: bytes) -> envelope_pb2.EventBatch:
    return envelope_pb2.EventBatch.FromString(body)


class ReleaseConsumer:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def handle(self, batch: list[envelope_pb2.EventBatch]) -> list[Outbound]:
        # A SENT delivery keeps its slot, whoever put it on this queue.
        keys = {
            (e.tenant_id, e.delivery_id)
            for events in batch
            for e in events.events
            if e.tenant_id and e.delivery_id and e.decision.state != SENT
        }
        await store.release(self.engine, keys)
        return []
