"""Frequency gRPC API: reservations against cap policies, policy admin, usage.

Every read and write is scoped to the caller's tenant.
"""

from __future__ import annotations

import grpc
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.frequency import ledger, store
from services.frequency import validation as check
from services.frequency.choice import Ask, Outcome, Request, Verdict
from services.frequency.consumer import STAGE
from shared import envelopes, reasons
from shared.auth import current_tenant
from shared.clock import now_timestamp, to_timestamp, utcnow
from shared.grpc.status import Violations, invalid_argument

State = envelopes.State


class FrequencyServicer(frequency_pb2_grpc.FrequencyServicer):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def Reserve(
        self, request: frequency_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.ReserveResponse:
        problems = Violations()
        check.required_text(request.user_id, "user_id", check.MAX_USER_ID, problems)
        if request.channel not in envelopes.CHANNEL_NAMES or request.channel == 0:
            problems.add("channel", "a known channel is required")
        check.category(request.category, "category", problems)
        check.kind(request.kind, "kind", problems)
        check.required_text(request.delivery_id, "delivery_id", check.MAX_DELIVERY_ID, problems)
        zone = check.zone(request.timezone, "timezone", problems)
        now = utcnow()
        at = check.instant(request.at, "at", problems, now) if request.HasField("at") else now
        problems.raise_if_any()
        ask = Ask(request.delivery_id, request.channel, request.category, request.kind)
        [tried] = await ledger.reserve(
            self.engine,
            [Request(current_tenant(), request.user_id, at, zone, (ask,))],
            dry_run=request.dry_run,
        )
        [verdict] = tried
        return frequency_pb2.ReserveResponse(
            granted=verdict.granted, decision=_decision(verdict, counted=not request.dry_run)
        )

    async def Release(
        self, request: frequency_pb2.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.ReleaseResponse:
        if not request.delivery_id:
            raise invalid_argument([("delivery_id", "required")])
        released = await store.release(self.engine, [(current_tenant(), request.delivery_id)])
        return frequency_pb2.ReleaseResponse(released=released > 0)

    async def PutCapPolicy(
        self, request: frequency_pb2.PutCapPolicyRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.PutCapPolicyResponse:
        problems = Violations()
        policy = check.policy_from_proto(request.policy, problems)
        problems.raise_if_any()
        await store.put_policy(self.engine, current_tenant(), policy)
        return frequency_pb2.PutCapPolicyResponse(policy=check.policy_to_proto(policy))

    async def ListCapPolicies(
        self, request: frequency_pb2.ListCapPoliciesRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.ListCapPoliciesResponse:
        policies = await store.list_policies(self.engine, current_tenant())
        return frequency_pb2.ListCapPoliciesResponse(
            policies=[check.policy_to_proto(p) for p in policies]
        )

    async def DeleteCapPolicy(
        self, request: frequency_pb2.DeleteCapPolicyRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.DeleteCapPolicyResponse:
        if not check.POLICY_ID.match(request.policy_id):
            raise invalid_argument([("policy_id", "required: [a-z0-9_-]{1,64}")])
        deleted = await store.delete_policy(self.engine, current_tenant(), request.policy_id)
        return frequency_pb2.DeleteCapPolicyResponse(deleted=deleted)

    async def GetUsage(
        self, request: frequency_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> frequency_pb2.GetUsageResponse:
        problems = Violations()
        check.required_text(request.user_id, "user_id", check.MAX_USER_ID, problems)
        zone = check.zone(request.timezone, "timezone", problems)
        problems.raise_if_any()
        found = await ledger.usage(self.engine, current_tenant(), request.user_id, utcnow(), zone)
        response = frequency_pb2.GetUsageResponse()
        for u in found:
            item = response.usage.add(
                policy_id=u.policy.policy_id, used=u.used, limit=u.policy.limit
            )
            if u.next_slot is not None:
                item.next_slot_at.CopyFrom(to_timestamp(u.next_slot))
        return response


def _decision(verdict: Verdict, *, counted: bool) -> intent_pb2.Decision:
    """The decision Reserve answers with; a dry run's is not counted in metrics."""
    if verdict.granted:
        state = State.DELIVERY_STATE_PENDING
        reason = reasons.NO_CAP_POLICY if verdict.outcome is Outcome.NO_POLICY else reasons.RESERVED
    else:
        state, reason = State.DELIVERY_STATE_CAPPED, reasons.CAPPED
    if counted:
        dec = envelopes.decision(STAGE, state, reason, verdict.detail)
    else:
        dec = intent_pb2.Decision(
            stage=STAGE, state=state, reason=reason, detail=verdict.detail, at=now_timestamp()
        )
    if not verdict.granted and verdict.next_slot is not None:
        dec.not_before.CopyFrom(to_timestamp(verdict.next_slot))
    return dec
