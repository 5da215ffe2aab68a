"""Frequency gRPC API: reservations against cap policies."""

from __future__ import annotations

import grpc
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc

from services.frequency.consumer import STAGE
from shared import envelopes, reasons
from shared.grpc.status import Violations, invalid_argument


class FrequencyServicer(frequency_pb2_grpc.FrequencyServicer):
    async def Reserve(
        self, request: frequency_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.ReserveResponse:
        problems = Violations()
        if not request.user_id:
            problems.add("user_id", "required")
        if request.channel not in envelopes.CHANNEL_NAMES or request.channel == 0:
            problems.add("channel", "a known channel is required")
        if not request.delivery_id:
            problems.add("delivery_id", "required")
        problems.raise_if_any()
        # No cap policy exists yet: every reservation is granted, and says why.
        dec = envelopes.decision(
            STAGE, envelopes.State.DELIVERY_STATE_PENDING, reasons.NO_CAP_POLICY
        )
        return frequency_pb2.ReserveResponse(granted=True, decision=dec)

    async def Release(
        self, request: frequency_pb2.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.ReleaseResponse:
        if not request.delivery_id:
            raise invalid_argument([("delivery_id", "required")])
        # Nothing was held: without policies, Reserve takes no slot.
        return frequency_pb2.ReleaseResponse(released=False)
