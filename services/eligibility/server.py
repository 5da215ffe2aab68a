"""Eligibility gRPC API: a dry run of this stage's decision."""

from __future__ import annotations

import grpc
from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc

from services.eligibility import rules
from services.eligibility.consumer import STAGE
from shared import envelopes
from shared.clock import utcnow
from shared.grpc.status import Violations


class EligibilityServicer(eligibility_pb2_grpc.EligibilityServicer):
    async def Check(
        self, request: eligibility_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.CheckResponse:
        problems = Violations()
        if not request.intent.channels:
            problems.add("intent.channels", "at least one channel is required")
        if not request.profile.user_id:
            problems.add("profile.user_id", "required")
        problems.raise_if_any()
        now = utcnow()
        response = eligibility_pb2.CheckResponse()
        for channel in request.intent.channels:
            verdict = rules.check(request.intent, request.profile, channel, now)
            response.decisions.add(
                channel=channel,
                decision=envelopes.decision(STAGE, verdict.state, verdict.reason, verdict.detail),
            )
        return response
