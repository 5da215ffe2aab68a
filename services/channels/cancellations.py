"""control.<service> queue -> CancelledIntent rows, so the worker stops sending."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import store
from shared.bus.publisher import Outbound


def decode_cancelled(body: bytes) -> envelope_pb2.IntentCancelled:
    message = envelope_pb2.IntentCancelled.FromString(body)
    if not message.tenant_id or not message.intent_id:
        raise ValueError("IntentCancelled without tenant_id or intent_id")
    return message


class CancellationRecorder:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def handle(self, batch: list[envelope_pb2.IntentCancelled]) -> list[Outbound]:
        await store.record_cancellations(self.engine, {(m.tenant_id, m.intent_id) for m in batch})
        return []
