"""control.frequency queue -> an erased profile's reservations are deleted.

The queue also hears cancelled intents; a cancelled delivery that held a slot
gives it back through the release queue, so they need nothing here.
"""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import store
from shared.bus.publisher import Outbound


def decode_control(body: bytes) -> envelope_pb2.ControlEvent:
    message = envelope_pb2.ControlEvent.FromString(body)
    kind = message.WhichOneof("event")
    if kind == "profile_erased":
        erased = message.profile_erased
        if not erased.tenant_id or not erased.user_id:
            raise ValueError("ProfileErased without tenant_id or user_id")
    elif kind is None:
        raise ValueError("ControlEvent without an event")
    return message


class ErasureConsumer:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def handle(self, batch: list[envelope_pb2.ControlEvent]) -> list[Outbound]:
        erased = {
            (m.profile_erased.tenant_id, m.profile_erased.user_id)
            for m in batch
            if m.WhichOneof("event") == "profile_erased"
        }
        await store.erase_users(self.engine, erased)
        return []
