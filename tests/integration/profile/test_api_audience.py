"""Topics, audience counts and web push feedback on a running profile service."""

from __future__ import annotations

import grpc
import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as pb

from tests.integration.grpc_helpers import bad_fields
from tests.integration.profile.conftest import full_profile
from tests.integration.profile.test_api import get, upsert


async def subscribe(profiles, tenants, topic: str, *users: str, tenant: str = "acme") -> int:
    request = pb.SubscribeRequest(topic=topic, user_ids=users)
    return (await profiles.Subscribe(request, metadata=tenants.metadata(tenant))).added


async def count(profiles, tenants, tenant: str = "acme", **audience) -> int:
    request = pb.CountAudienceRequest(audience=intent_pb2.Audience(**audience))
    return (await profiles.CountAudience(request, metadata=tenants.metadata(tenant))).count


async def test_topic_members_come_and_go_and_only_members_with_a_profile_count(profiles, tenants):
    for user in ("a", "b", "c"):
        await upsert(profiles, tenants, full_profile(user))
    assert await subscribe(profiles, tenants, "news", "a", "b", "ghost") == 3
    assert await subscribe(profiles, tenants, "news", "b", "c") == 1
    assert await subscribe(profiles, tenants, "news", "a", tenant="globex") == 1
    assert await count(profiles, tenants, topic="news") == 3
    request = pb.UnsubscribeRequest(topic="news", user_ids=["a", "ghost", "zed"])
    removed = await profiles.Unsubscribe(request, metadata=tenants.metadata())
    assert removed.removed == 2
    assert await count(profiles, tenants, topic="news") == 2
    assert await count(profiles, tenants, tenant="globex", topic="news") == 0


async def test_a_segment_counts_the_profiles_it_selects_now(profiles, tenants):
    for n in range(6):
        profile = full_profile(f"u{n}")
        profile.attributes["member"] = n % 2 == 0
        await upsert(profiles, tenants, profile)
    event = pb.RecordEventRequest(user_id="u1", event=pb.BehaviourEvent(name="page_view"))
    event.event.properties["path"] = "/membership/join"
    await profiles.RecordEvent(event, metadata=tenants.metadata())
    assert await count(profiles, tenants, segment="member = false") == 3
    segment = 'member = false AND event page_view where path starts with "/membership" within 1d'
    assert await count(profiles, tenants, segment=segment) == 1
    assert await count(profiles, tenants, tenant="globex", segment="member = false") == 0


async def test_listed_user_ids_count_once_each_profile_or_not(profiles, tenants):
    assert await count(profiles, tenants, user_ids=["x", "y", "z"]) == 3


@pytest.mark.parametrize(
    ("audience", "field"),
    [
        ({}, "audience.user_ids"),
        ({"topic": "news", "segment": "a = 1"}, "audience"),
        ({"topic": "Not A Topic"}, "audience.topic"),
        ({"segment": "a ="}, "audience.segment"),
    ],
    ids=["empty", "two ways", "bad topic", "bad segment"],
)
async def test_a_bad_audience_is_refused_naming_the_field(profiles, tenants, audience, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await count(profiles, tenants, **audience)
    assert list(bad_fields(err.value)) == [field]


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.SubscribeRequest(topic="news"), ["user_ids"]),
        (pb.SubscribeRequest(topic="", user_ids=["a", ""]), ["topic", "user_ids[1]"]),
        (pb.SubscribeRequest(topic="news", user_ids=["a"] * 10_001), ["user_ids"]),
    ],
    ids=["no users", "no topic and an empty id", "over 10,000"],
)
async def test_a_bad_subscription_is_refused_naming_the_fields(profiles, tenants, request_, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.Subscribe(request_, metadata=tenants.metadata())
    assert list(bad_fields(err.value)) == fields


async def test_web_push_subscriptions_the_push_service_dropped_are_removed(profiles, tenants):
    await upsert(profiles, tenants, full_profile("u1"))
    request = pb.RemoveWebPushSubscriptionsRequest(
        user_id="u1", endpoints=["https://push.example/sub/1"]
    )
    reply = await profiles.RemoveWebPushSubscriptions(request, metadata=tenants.metadata())
    assert reply.removed == 1
    assert list((await get(profiles, tenants, "u1")).contacts.webpush) == []
    again = await profiles.RemoveWebPushSubscriptions(request, metadata=tenants.metadata())
    assert again.removed == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.RemoveWebPushSubscriptions(
            pb.RemoveWebPushSubscriptionsRequest(user_id="u1"), metadata=tenants.metadata()
        )
    assert list(bad_fields(err.value)) == ["endpoints"]
