"""Eligibility gRPC API: a dry run of this stage's decision, the suppression
list, and the tenant's quiet hours. Every read and write is the caller's tenant's.
"""

from __future__ import annotations

import grpc
from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.eligibility import rules, store, suppression, validation
from services.eligibility.consumer import STAGE
from services.eligibility.cursor import decode_page_token, encode_page_token
from services.eligibility.quiet_hours import QuietPolicy
from services.eligibility.settings import EligibilitySettings
from shared.auth import current_tenant
from shared.clock import to_timestamp, utcnow
from shared.grpc.status import Violations


def policy_to_proto(policy: QuietPolicy | None) -> eligibility_pb2.QuietHoursPolicy:
    if policy is None:
        return eligibility_pb2.QuietHoursPolicy()
    return eligibility_pb2.QuietHoursPolicy(
        enabled=policy.enabled,
        start_minute=policy.start_minute,
        end_minute=policy.end_minute,
        default_timezone=policy.default_timezone,
    )


def entry_to_proto(entry: store.Entry) -> eligibility_pb2.Suppression:
    return eligibility_pb2.Suppression(
        channel=entry.channel,  # type: ignore[arg-type]
        contact_hash=entry.contact_hash,
        reason=entry.reason,  # type: ignore[arg-type]
        detail=entry.detail,
        at=to_timestamp(entry.at),
    )


class EligibilityServicer(eligibility_pb2_grpc.EligibilityServicer):
    def __init__(self, engine: AsyncEngine, settings: EligibilitySettings) -> None:
        self.engine = engine
        self.hash_key = settings.hash_key()
        self.requires_opt_in = settings.marketing_requires_opt_in

    async def Check(
        self, request: eligibility_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.CheckResponse:
        problems = Violations()
        at = validation.check_request(request, problems) or utcnow()
        problems.raise_if_any()
        tenant = current_tenant()
        # Read fresh (no cache): a dry run should see a policy set a moment ago.
        policy = (await store.quiet_hours_of(self.engine, [tenant])).get(tenant)
        hashes = suppression.profile_hashes(self.hash_key, request.profile)
        listed = await store.find_suppressions(
            self.engine, {(tenant, ch, h) for ch, h in hashes.items()}
        )
        suppressed = suppression.listed_channels(self.hash_key, tenant, request.profile, listed)
        facts = rules.Facts(policy, suppressed, self.requires_opt_in)
        response = eligibility_pb2.CheckResponse()
        for channel in request.intent.channels:
            verdict = rules.check(request.intent, request.profile, channel, at, facts)
            # Built, not counted: a dry run is not a decision of the pipeline.
            decision = intent_pb2.Decision(
                stage=STAGE,
                state=verdict.state,
                reason=verdict.reason,
                detail=verdict.detail,
                at=to_timestamp(at),
            )
            if verdict.not_before is not None:
                decision.not_before.CopyFrom(to_timestamp(verdict.not_before))
            response.decisions.add(channel=channel, decision=decision)
        return response

    async def AddSuppressions(
        self, request: eligibility_pb2.AddSuppressionsRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.AddSuppressionsResponse:
        problems = Violations()
        validation.entries_count("entries", len(request.entries), problems)
        now = utcnow()
        entries: dict[tuple[int, str], store.Entry] = {}
        for i, item in enumerate(request.entries[: validation.MAX_ENTRIES]):
            parsed = validation.new_entry(i, item, self.hash_key, now, problems)
            if parsed is not None:
                entry = store.Entry(*parsed)
                entries.setdefault((entry.channel, entry.contact_hash), entry)
        problems.raise_if_any()
        added = await store.add_suppressions(self.engine, current_tenant(), list(entries.values()))
        return eligibility_pb2.AddSuppressionsResponse(added=added)

    async def RemoveSuppressions(
        self,
        request: eligibility_pb2.RemoveSuppressionsRequest,
        context: grpc.aio.ServicerContext,
    ) -> eligibility_pb2.RemoveSuppressionsResponse:
        problems = Violations()
        validation.entries_count("entries", len(request.entries), problems)
        keys: set[tuple[int, str]] = set()
        for i, item in enumerate(request.entries[: validation.MAX_ENTRIES]):
            key = validation.removal_key(i, item, self.hash_key, problems)
            if key is not None:
                keys.add(key)
        problems.raise_if_any()
        removed = await store.remove_suppressions(self.engine, current_tenant(), keys)
        return eligibility_pb2.RemoveSuppressionsResponse(removed=removed)

    async def ListSuppressions(
        self, request: eligibility_pb2.ListSuppressionsRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.ListSuppressionsResponse:
        problems = Violations()
        channel = validation.list_filter(request, problems)
        size = validation.page_size(request.page_size, store.MAX_PAGE_SIZE, problems)
        after = None
        if request.page_token:
            try:
                after = decode_page_token(request.page_token)
            except ValueError:
                problems.add("page_token", "not a token from a previous ListSuppressions response")
        problems.raise_if_any()
        rows = await store.list_suppressions(self.engine, current_tenant(), channel, size, after)
        page = rows[:size]
        response = eligibility_pb2.ListSuppressionsResponse(
            entries=[entry_to_proto(e) for e in page]
        )
        if len(rows) > size:
            response.next_page_token = encode_page_token(page[-1].channel, page[-1].contact_hash)
        return response

    async def SetQuietHours(
        self, request: eligibility_pb2.SetQuietHoursRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.SetQuietHoursResponse:
        problems = Violations()
        policy = validation.quiet_policy(request, problems)
        problems.raise_if_any()
        await store.set_quiet_hours(self.engine, current_tenant(), policy, utcnow())
        return eligibility_pb2.SetQuietHoursResponse(policy=policy_to_proto(policy))

    async def GetQuietHours(
        self, request: eligibility_pb2.GetQuietHoursRequest, context: grpc.aio.ServicerContext
    ) -> eligibility_pb2.GetQuietHoursResponse:
        tenant = current_tenant()
        policy = (await store.quiet_hours_of(self.engine, [tenant])).get(tenant)
        return eligibility_pb2.GetQuietHoursResponse(policy=policy_to_proto(policy))
