"""Inbox gRPC API: the feed, its counts, state marks, and live streams.

Every query is scoped by the caller's tenant (set by the auth interceptor).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

import grpc
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inapp import requests, store
from services.inapp.announce import announce
from services.inapp.cursor import encode_page_token
from services.inapp.messages import change_event, to_proto, with_counts
from services.inapp.states import Mark, Target
from shared.auth import current_tenant
from shared.bus.broadcast import Broadcast
from shared.bus.publisher import Bus
from shared.clock import utcnow
from shared.grpc.status import Violations


class _NamedMessages(Protocol):
    @property
    def user_id(self) -> str: ...
    @property
    def message_ids(self) -> Sequence[str]: ...


class InboxServicer(inbox_pb2_grpc.InboxServicer):
    def __init__(
        self, engine: AsyncEngine, bus: Bus, watchers: Broadcast[inbox_pb2.InboxEvent]
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.watchers = watchers

    async def ListInbox(
        self, request: inbox_pb2.ListInboxRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.ListInboxResponse:
        problems = Violations()
        requests.require_user(request.user_id, problems)
        size = requests.page_size(request.page_size, problems)
        status = requests.status(request.status, problems)
        after = requests.page_after(request.page_token, status, problems)
        problems.raise_if_any()
        rows, counts = await store.list_page(
            self.engine, current_tenant(), request.user_id, size, after, status
        )
        page = rows[:size]
        response = inbox_pb2.ListInboxResponse(
            messages=[to_proto(r) for r in page],
            unread_count=counts.unread,
            unseen_count=counts.unseen,
        )
        if len(rows) > size:
            last = page[-1]
            response.next_page_token = encode_page_token(
                store.Position(last.created_at, last.message_id), status
            )
        return response

    async def GetCounts(
        self, request: inbox_pb2.GetCountsRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.GetCountsResponse:
        problems = Violations()
        requests.require_user(request.user_id, problems)
        problems.raise_if_any()
        counts = await store.counts(self.engine, current_tenant(), request.user_id)
        return inbox_pb2.GetCountsResponse(unread_count=counts.unread, unseen_count=counts.unseen)

    async def MarkSeen(
        self, request: inbox_pb2.MarkSeenRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.MarkSeenResponse:
        now = utcnow()
        problems = Violations()
        requests.require_user(request.user_id, problems)
        target = requests.seen_target(request, now, problems)
        problems.raise_if_any()
        updated, counts = await self._mark(request.user_id, Mark.SEEN, target, now)
        return inbox_pb2.MarkSeenResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def MarkRead(
        self, request: inbox_pb2.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.MarkReadResponse:
        updated, counts = await self._mark_named(request, Mark.READ)
        return inbox_pb2.MarkReadResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def MarkUnread(
        self, request: inbox_pb2.MarkUnreadRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.MarkUnreadResponse:
        updated, counts = await self._mark_named(request, Mark.UNREAD)
        return inbox_pb2.MarkUnreadResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def MarkAllRead(
        self, request: inbox_pb2.MarkAllReadRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.MarkAllReadResponse:
        now = utcnow()
        problems = Violations()
        requests.require_user(request.user_id, problems)
        up_to = request.up_to if request.HasField("up_to") else None
        target = requests.feed_up_to(up_to, now, problems)
        problems.raise_if_any()
        updated, counts = await self._mark(request.user_id, Mark.READ, target, now)
        return inbox_pb2.MarkAllReadResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def Archive(
        self, request: inbox_pb2.ArchiveRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.ArchiveResponse:
        updated, counts = await self._mark_named(request, Mark.ARCHIVED)
        return inbox_pb2.ArchiveResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def Unarchive(
        self, request: inbox_pb2.UnarchiveRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.UnarchiveResponse:
        updated, counts = await self._mark_named(request, Mark.UNARCHIVED)
        return inbox_pb2.UnarchiveResponse(
            updated=updated, unread_count=counts.unread, unseen_count=counts.unseen
        )

    async def WatchInbox(
        self, request: inbox_pb2.WatchInboxRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inbox_pb2.InboxMessage]:
        problems = Violations()
        requests.require_user(request.user_id, problems)
        problems.raise_if_any()
        async with self.watchers.subscribe((current_tenant(), request.user_id)) as queue:
            # Headers go out once we are subscribed: a client that has them
            # will see every message delivered from then on.
            await context.send_initial_metadata(())
            while True:
                event = await queue.get()
                if event.HasField("delivered"):
                    yield event.delivered

    async def WatchInboxEvents(
        self, request: inbox_pb2.WatchInboxEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inbox_pb2.InboxEvent]:
        problems = Violations()
        requests.require_user(request.user_id, problems)
        problems.raise_if_any()
        tenant_id, user_id = current_tenant(), request.user_id
        async with self.watchers.subscribe((tenant_id, user_id)) as queue:
            # Counts read after subscribing: no change falls between them and the stream.
            counts = await store.counts(self.engine, tenant_id, user_id)
            yield inbox_pb2.InboxEvent(unread_count=counts.unread, unseen_count=counts.unseen)
            while True:
                events = await _drain(queue)
                # One count for whatever arrived together: the last event's is exact.
                counts = await store.counts(self.engine, tenant_id, user_id)
                for event in events:
                    yield with_counts(event, counts)

    async def _mark_named(self, request: _NamedMessages, mark: Mark) -> tuple[int, store.Counts]:
        problems = Violations()
        requests.require_user(request.user_id, problems)
        target = requests.named_ids(request.message_ids, problems)
        problems.raise_if_any()
        return await self._mark(request.user_id, mark, target, utcnow())

    async def _mark(
        self, user_id: str, mark: Mark, target: Target, now: datetime
    ) -> tuple[int, store.Counts]:
        tenant_id = current_tenant()
        updated, counts = await store.apply_mark(self.engine, tenant_id, user_id, mark, target, now)
        if updated:
            # The user's other devices update their lists and badges.
            await announce(self.bus, {tenant_id: [change_event(user_id, mark, target, now)]})
        return updated, counts


async def _drain(queue: asyncio.Queue[inbox_pb2.InboxEvent]) -> list[inbox_pb2.InboxEvent]:
    """The next event, and any others already waiting behind it."""
    events = [await queue.get()]
    while not queue.empty():
        events.append(queue.get_nowait())
    return events
