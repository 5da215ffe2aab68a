"""The in-app provider: delivering is inserting into the inbox, then telling
live watchers. A redelivered message never makes a second inbox row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.inapp.v1 import inbox_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels.provider import OutgoingMessage, SendResult, sent
from services.inapp import store
from services.inapp.announce import announce
from services.inapp.messages import inbox_row, to_proto
from shared.bus.publisher import Bus
from shared.clock import to_timestamp, utcnow
from shared.ids import new_ids


class InboxProvider:
    name = "inbox"

    def __init__(self, engine: AsyncEngine, bus: Bus) -> None:
        self.engine = engine
        self.bus = bus

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        now = utcnow()
        rows = [inbox_row(m, now, i) for m, i in zip(messages, new_ids(len(messages)), strict=True)]
        new = await store.insert_new(self.engine, rows)
        fresh = [r for r in rows if (r.tenant_id, r.delivery_id) in new]
        ids = {(r.tenant_id, r.delivery_id): r.message_id for r in fresh}
        # Already in the inbox (a send repeated after a crash): report the first message.
        repeated = [
            (r.tenant_id, r.delivery_id) for r in rows if (r.tenant_id, r.delivery_id) not in new
        ]
        ids.update(await store.message_ids_for(self.engine, repeated))
        await self._announce(fresh)
        return [sent(r.delivery_id, ids.get((r.tenant_id, r.delivery_id), "")) for r in rows]

    async def _announce(self, rows: list[store.NewInboxRow]) -> None:
        """Tell every replica's watchers; the inbox row is the record, this is a courtesy."""
        by_tenant: dict[str, list[inbox_pb2.InboxEvent]] = defaultdict(list)
        created: dict[datetime, Timestamp] = {}  # a batch's rows share their time
        for row in rows:
            at = created.get(row.created_at)
            if at is None:
                at = created[row.created_at] = to_timestamp(row.created_at)
            by_tenant[row.tenant_id].append(inbox_pb2.InboxEvent(delivered=to_proto(row, at)))
        await announce(self.bus, dict(by_tenant))
