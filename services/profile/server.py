"""Profile gRPC API: proto <-> stores, validation and status mapping."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import grpc
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.profile.v1 import profile_pb2 as pb
from sendmesh.profile.v1 import profile_pb2_grpc

from services.profile import paging, validation
from services.profile.audience import audience_problems
from services.profile.consent_store import ConsentStore
from services.profile.event_store import EventStore
from services.profile.matcher import match_rules
from services.profile.resolver import AudienceResolver
from services.profile.store import ProfileStore
from services.profile.topic_store import TopicStore
from shared.auth import current_tenant
from shared.bus import topology
from shared.bus.publisher import BrokerError, Bus, to_events
from shared.clock import from_timestamp, now_timestamp, utcnow
from shared.grpc import status
from shared.grpc.status import Violations

Ctx: TypeAlias = grpc.aio.ServicerContext
MAX_EVENTS = 1000
MAX_PROFILES = 1000
MAX_MEMBERS = 10_000
MAX_CHECKS = 1000
MAX_ENDPOINTS = 100
EVENTS_TOKEN, CONSENTS_TOKEN = "events", "consents"


@dataclass(frozen=True)
class Stores:
    profiles: ProfileStore
    consents: ConsentStore
    events: EventStore
    topics: TopicStore
    resolver: AudienceResolver


def check(*problems: Iterable[tuple[str, str]]) -> None:
    """INVALID_ARGUMENT naming every bad field, if there is one."""
    found = Violations()
    for items in problems:
        found.extend(items)
    found.raise_if_any()


def position(kind: str, token: str) -> paging.Position | None:
    try:
        return paging.decode_page_token(kind, token)
    except ValueError as err:
        raise status.invalid_argument([("page_token", str(err))]) from None


def token(kind: str, last: paging.Position | None) -> str:
    return "" if last is None else paging.encode_page_token(kind, last)


def stamped(event: pb.BehaviourEvent) -> pb.BehaviourEvent:
    """The event, with occurred_at now if it has none."""
    if event.HasField("occurred_at"):
        return event
    copy = pb.BehaviourEvent()
    copy.CopyFrom(event)
    copy.occurred_at.CopyFrom(now_timestamp())
    return copy


def bulk_problems(
    profiles: Iterable[pb.Profile], now: datetime, *, allow_http_push: bool = False
) -> Iterator[tuple[str, str]]:
    """UpsertProfile's and SetConsent's rules per item, and no user id twice."""
    first: dict[str, int] = {}
    for i, p in enumerate(profiles):
        for name, problem in validation.profile(p, allow_http_push=allow_http_push):
            yield f"profiles[{i}]{name.removeprefix('profile')}", problem
        for j, c in enumerate(p.consents):
            yield from validation.consent(f"profiles[{i}].consents[{j}]", c, now)
        if p.user_id in first:
            yield f"profiles[{i}].user_id", f"repeats profiles[{first[p.user_id]}]"
        first.setdefault(p.user_id, i)


class ProfileServicer(profile_pb2_grpc.ProfilesServicer):
    def __init__(self, stores: Stores, bus: Bus, *, allow_http_push: bool = False) -> None:
        self._s = stores
        self._bus = bus
        self._allow_http_push = allow_http_push

    async def UpsertProfile(
        self, request: pb.UpsertProfileRequest, context: Ctx
    ) -> pb.UpsertProfileResponse:
        check(validation.profile(request.profile, allow_http_push=self._allow_http_push))
        saved = await self._s.profiles.upsert(current_tenant(), request.profile, utcnow())
        return pb.UpsertProfileResponse(profile=saved)

    async def UpsertProfiles(
        self, request: pb.UpsertProfilesRequest, context: Ctx
    ) -> pb.UpsertProfilesResponse:
        check(validation.count("profiles", request.profiles, MAX_PROFILES))
        check(bulk_problems(request.profiles, utcnow(), allow_http_push=self._allow_http_push))
        upserted, added = await self._s.profiles.upsert_many(
            current_tenant(), request.profiles, utcnow()
        )
        return pb.UpsertProfilesResponse(upserted=upserted, consents_added=added)

    async def GetProfile(
        self, request: pb.GetProfileRequest, context: Ctx
    ) -> pb.GetProfileResponse:
        check(validation.user_id("user_id", request.user_id))
        found = await self._s.profiles.get_many(current_tenant(), [request.user_id])
        if request.user_id not in found:
            raise status.not_found("profile", request.user_id)
        return pb.GetProfileResponse(profile=found[request.user_id])

    async def RecordEvent(
        self, request: pb.RecordEventRequest, context: Ctx
    ) -> pb.RecordEventResponse:
        check(
            validation.user_id("user_id", request.user_id), validation.event("event", request.event)
        )
        await self._s.events.record(current_tenant(), [(request.user_id, stamped(request.event))])
        return pb.RecordEventResponse()

    async def RecordEvents(
        self, request: pb.RecordEventsRequest, context: Ctx
    ) -> pb.RecordEventsResponse:
        check(validation.count("events", request.events, MAX_EVENTS))
        check(
            p
            for i, e in enumerate(request.events)
            for p in validation.user_event(f"events[{i}]", e)
        )
        pairs = [(item.user_id, stamped(item.event)) for item in request.events]
        return pb.RecordEventsResponse(
            recorded=await self._s.events.record(current_tenant(), pairs)
        )

    async def ListEvents(
        self, request: pb.ListEventsRequest, context: Ctx
    ) -> pb.ListEventsResponse:
        check(validation.list_events(request))
        since = from_timestamp(request.since) if request.HasField("since") else None
        until = from_timestamp(request.until) if request.HasField("until") else None
        events, last = await self._s.events.page(
            current_tenant(),
            request.user_id,
            name=request.name,
            since=since,
            until=until,
            after=position(EVENTS_TOKEN, request.page_token),
            limit=paging.page_size(request.page_size),
        )
        return pb.ListEventsResponse(events=events, next_page_token=token(EVENTS_TOKEN, last))

    async def SetConsent(
        self, request: pb.SetConsentRequest, context: Ctx
    ) -> pb.SetConsentResponse:
        check(
            validation.user_id("user_id", request.user_id),
            validation.consent("consent", request.consent, utcnow()),
        )
        consent = pb.Consent()
        consent.CopyFrom(request.consent)
        if not consent.HasField("at"):
            consent.at.CopyFrom(now_timestamp())
        profile = await self._s.consents.add(current_tenant(), request.user_id, consent, utcnow())
        if profile is None:
            raise status.not_found("profile", request.user_id)
        return pb.SetConsentResponse(profile=profile)

    async def ListConsentHistory(
        self, request: pb.ListConsentHistoryRequest, context: Ctx
    ) -> pb.ListConsentHistoryResponse:
        check(
            validation.user_id("user_id", request.user_id),
            validation.page("page_size", request.page_size),
        )
        consents, last = await self._s.consents.history(
            current_tenant(),
            request.user_id,
            after=position(CONSENTS_TOKEN, request.page_token),
            limit=paging.page_size(request.page_size),
        )
        return pb.ListConsentHistoryResponse(
            consents=consents, next_page_token=token(CONSENTS_TOKEN, last)
        )

    async def Subscribe(self, request: pb.SubscribeRequest, context: Ctx) -> pb.SubscribeResponse:
        check(
            validation.topic("topic", request.topic),
            validation.user_ids("user_ids", request.user_ids, MAX_MEMBERS),
        )
        added = await self._s.topics.subscribe(current_tenant(), request.topic, request.user_ids)
        return pb.SubscribeResponse(added=added)

    async def Unsubscribe(
        self, request: pb.UnsubscribeRequest, context: Ctx
    ) -> pb.UnsubscribeResponse:
        check(
            validation.topic("topic", request.topic),
            validation.user_ids("user_ids", request.user_ids, MAX_MEMBERS),
        )
        removed = await self._s.topics.unsubscribe(
            current_tenant(), request.topic, request.user_ids
        )
        return pb.UnsubscribeResponse(removed=removed)

    async def CountAudience(
        self, request: pb.CountAudienceRequest, context: Ctx
    ) -> pb.CountAudienceResponse:
        check(audience_problems(request.audience, "audience"))
        count = await self._s.resolver.count(current_tenant(), request.audience, utcnow())
        return pb.CountAudienceResponse(count=count)

    async def MatchRules(
        self, request: pb.MatchRulesRequest, context: Ctx
    ) -> pb.MatchRulesResponse:
        check(validation.count("checks", request.checks, MAX_CHECKS))
        if request.HasField("at"):
            check(validation.timestamp("at", request.at))
        check(
            p
            for i, c in enumerate(request.checks)
            for p in validation.rule_check(f"checks[{i}]", c)
        )
        at = from_timestamp(request.at) if request.HasField("at") else utcnow()
        matches = await match_rules(self._s.events, current_tenant(), request.checks, at)
        return pb.MatchRulesResponse(matches=matches)

    async def RemoveWebPushSubscriptions(
        self, request: pb.RemoveWebPushSubscriptionsRequest, context: Ctx
    ) -> pb.RemoveWebPushSubscriptionsResponse:
        check(
            validation.user_id("user_id", request.user_id),
            validation.count("endpoints", request.endpoints, MAX_ENDPOINTS),
        )
        removed = await self._s.profiles.remove_webpush(
            current_tenant(), request.user_id, request.endpoints, utcnow()
        )
        return pb.RemoveWebPushSubscriptionsResponse(removed=removed)

    async def EraseProfile(
        self, request: pb.EraseProfileRequest, context: Ctx
    ) -> pb.EraseProfileResponse:
        check(validation.user_id("user_id", request.user_id))
        tenant = current_tenant()
        erased = await self._s.profiles.erase(tenant, request.user_id)
        # Announced on every call, erased or not: a retry after a failed
        # announcement still reaches the inbox and the scheduler.
        notice = envelope_pb2.ControlEvent(
            profile_erased=envelope_pb2.ProfileErased(
                tenant_id=tenant, user_id=request.user_id, at=now_timestamp()
            )
        )
        try:
            await self._bus.publish(
                [to_events(self._bus.topology, notice, topology.EVENTS_ERASED_KEY)]
            )
        except BrokerError:
            raise status.unavailable(
                "erased, but not yet announced: call EraseProfile again"
            ) from None
        return pb.EraseProfileResponse(erased=erased)
