"""Inbox gRPC API: the feed, read marks, and a live stream of new messages.

Every query is scoped by the caller's tenant (set by the auth interceptor).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.inapp import store
from services.inapp.cursor import decode_page_token, encode_page_token
from services.inapp.messages import to_proto
from shared.auth import current_tenant
from shared.bus.broadcast import Broadcast
from shared.grpc.status import Violations

DEFAULT_PAGE_SIZE = 20
MAX_MARK_READ = 1000
MAX_ID_LENGTH = 256


def _require_user(user_id: str, problems: Violations) -> None:
    if not user_id:
        problems.add("user_id", "required")
    elif len(user_id) > MAX_ID_LENGTH:
        problems.add("user_id", f"at most {MAX_ID_LENGTH} characters")


def _page_size(requested: int, problems: Violations) -> int:
    # AIP-158: unset means the default, above the maximum is coerced to it.
    if requested < 0:
        problems.add("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, store.MAX_PAGE_SIZE)


def _after(token: str, problems: Violations) -> store.Position | None:
    if not token:
        return None
    try:
        return decode_page_token(token)
    except ValueError:
        problems.add("page_token", "not a token from a previous ListInbox response")
        return None


class InboxServicer(inbox_pb2_grpc.InboxServicer):
    def __init__(
        self,
        engine: AsyncEngine,
        watchers: Broadcast[inbox_pb2.InboxMessage],
    ) -> None:
        self.engine = engine
        self.watchers = watchers

    async def ListInbox(
        self, request: inbox_pb2.ListInboxRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.ListInboxResponse:
        problems = Violations()
        _require_user(request.user_id, problems)
        size = _page_size(request.page_size, problems)
        after = _after(request.page_token, problems)
        problems.raise_if_any()
        rows, counts = await store.list_page(
            self.engine, current_tenant(), request.user_id, size, after
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
                store.Position(last.created_at, last.message_id)
            )
        return response

    async def MarkRead(
        self, request: inbox_pb2.MarkReadRequest, context: grpc.aio.ServicerContext
    ) -> inbox_pb2.MarkReadResponse:
        problems = Violations()
        _require_user(request.user_id, problems)
        if not request.message_ids:
            problems.add("message_ids", "at least one message id is required")
        elif len(request.message_ids) > MAX_MARK_READ:
            problems.add("message_ids", f"at most {MAX_MARK_READ} per call")
        for i, message_id in enumerate(request.message_ids):
            if not message_id:
                problems.add(f"message_ids[{i}]", "must not be empty")
        problems.raise_if_any()
        updated, counts = await store.mark_read(
            self.engine, current_tenant(), request.user_id, list(request.message_ids)
        )
        return inbox_pb2.MarkReadResponse(updated=updated, unread_count=counts.unread)

    async def WatchInbox(
        self, request: inbox_pb2.WatchInboxRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inbox_pb2.InboxMessage]:
        problems = Violations()
        _require_user(request.user_id, problems)
        problems.raise_if_any()
        async with self.watchers.subscribe((current_tenant(), request.user_id)) as queue:
            # Headers go out once we are subscribed: a client that has them
            # will see every message delivered from then on.
            await context.send_initial_metadata(())
            while True:
                yield await queue.get()
