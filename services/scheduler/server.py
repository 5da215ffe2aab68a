"""Scheduler gRPC API: list and cancel deferred deliveries.

Every query is scoped by the caller's tenant (set by the auth interceptor).
"""

from __future__ import annotations

import grpc
from sendmesh.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scheduler import listing
from services.scheduler.cancels import Canceller
from services.scheduler.paging import Position, decode_page_token, encode_page_token
from shared.auth import current_tenant
from shared.bus.publisher import BrokerError
from shared.clock import to_timestamp
from shared.grpc.status import Violations, unavailable

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_ID_LENGTH = 64


def _check_intent_id(intent_id: str, problems: Violations, *, required: bool) -> None:
    if not intent_id and required:
        problems.add("intent_id", "required")
    elif len(intent_id) > MAX_ID_LENGTH:
        problems.add("intent_id", f"at most {MAX_ID_LENGTH} characters")


def _page_size(requested: int, problems: Violations) -> int:
    # AIP-158: unset means the default, above the maximum is coerced to it.
    if requested < 0:
        problems.add("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _after(token: str, intent_id: str, problems: Violations) -> Position | None:
    if not token:
        return None
    try:
        return decode_page_token(token, intent_id)
    except ValueError as err:
        problems.add("page_token", f"not a token from a previous ListDeferred response ({err})")
        return None


def _to_proto(row: listing.Listed) -> scheduler_pb2.Deferred:
    return scheduler_pb2.Deferred(
        intent_id=row.intent_id,
        delivery_id=row.position.delivery_id,
        user_id=row.user_id,
        channel=row.channel,  # type: ignore[arg-type]
        due_at=to_timestamp(row.position.due_at),
        stage=row.stage,
        reason=row.reason,
    )


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    def __init__(self, engine: AsyncEngine, canceller: Canceller) -> None:
        self.engine = engine
        self.canceller = canceller

    async def ListDeferred(
        self, request: scheduler_pb2.ListDeferredRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.ListDeferredResponse:
        problems = Violations()
        _check_intent_id(request.intent_id, problems, required=False)
        size = _page_size(request.page_size, problems)
        after = _after(request.page_token, request.intent_id, problems)
        problems.raise_if_any()
        rows = await listing.list_page(
            self.engine, current_tenant(), request.intent_id, size, after
        )
        page = rows[:size]
        response = scheduler_pb2.ListDeferredResponse(deferred=[_to_proto(r) for r in page])
        if len(rows) > size:
            response.next_page_token = encode_page_token(page[-1].position, request.intent_id)
        return response

    async def CancelDeferred(
        self, request: scheduler_pb2.CancelDeferredRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.CancelDeferredResponse:
        problems = Violations()
        _check_intent_id(request.intent_id, problems, required=True)
        problems.raise_if_any()
        try:
            cancelled = await self.canceller.cancel({(current_tenant(), request.intent_id)})
        except BrokerError:
            # Rows whose events were not confirmed are still held: a retry finishes it.
            raise unavailable("the event bus did not confirm; retry") from None
        return scheduler_pb2.CancelDeferredResponse(cancelled=cancelled)
