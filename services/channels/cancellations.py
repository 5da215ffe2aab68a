"""control.<service> queue -> CancelledIntent rows, so the worker stops sending.

The queue also hears erased profiles: a worker that keeps something about a
user (the inbox) is given `on_erased`; the others keep only dedup records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import store
from shared.bus.publisher import Outbound


def decode_control(body: bytes) -> envelope_pb2.ControlEvent:
    message = envelope_pb2.ControlEvent.FromString(body)
    kind = message.WhichOneof("event")
    if kind == "intent_cancelled":
        c = message.intent_cancelled
        if not c.tenant_id or not c.intent_id:
            raise ValueError("IntentCancelled without tenant_id or intent_id")
    elif kind == "profile_erased":
        e = message.profile_erased
        if not e.tenant_id or not e.user_id:
            raise ValueError("ProfileErased without tenant_id or user_id")
    else:
        raise ValueError("ControlEvent without an event")
    return message


# Erases what the service keeps about these (tenant, user) pairs.
OnErased = Callable[[AsyncEngine, set[tuple[str, str]]], Awaitable[object]]


class CancellationRecorder:
    def __init__(self, engine: AsyncEngine, on_erased: OnErased | None = None) -> None:
        self.engine = engine
        self.on_erased = on_erased

    async def handle(self, batch: list[envelope_pb2.ControlEvent]) -> list[Outbound]:
        cancelled = {
            (m.intent_cancelled.tenant_id, m.intent_cancelled.intent_id)
            for m in batch
            if m.WhichOneof("event") == "intent_cancelled"
        }
        if cancelled:
            await store.record_cancellations(self.engine, cancelled)
        erased = {
            (m.profile_erased.tenant_id, m.profile_erased.user_id)
            for m in batch
            if m.WhichOneof("event") == "profile_erased"
        }
        if erased and self.on_erased is not None:
            await self.on_erased(self.engine, erased)
        return []
