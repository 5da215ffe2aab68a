"""The Frequency gRPC API over a real server: reservations, policy admin, usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2

from services.frequency.__main__ import create_runtime
from services.frequency.settings import FrequencySettings
from shared.clock import from_timestamp, to_timestamp
from tests.conftest import running
from tests.integration.grpc_helpers import bad_fields, channel_to

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
W = frequency_pb2.WindowKind
# 09:00 in New York (UTC-4 in June).
AT = datetime(2026, 6, 10, 13, tzinfo=UTC)


@pytest.fixture
async def stub(
    make_settings: Callable[..., Any],
) -> AsyncIterator[frequency_pb2_grpc.FrequencyStub]:
    async with (
        running(create_runtime(make_settings(FrequencySettings))) as runtime,
        channel_to(runtime.port) as channel,
    ):
        yield frequency_pb2_grpc.FrequencyStub(channel)


def reserve_request(**changes: Any) -> frequency_pb2.ReserveRequest:
    values: dict[str, Any] = {
        "user_id": "u1",
        "channel": C.CHANNEL_EMAIL,
        "category": "cart_reminder",
        "kind": intent_pb2.KIND_MARKETING,
        "delivery_id": "d1",
    }
    values.update(changes)
    return frequency_pb2.ReserveRequest(**values)


@pytest.mark.parametrize(
    "channel", [C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP]
)
async def test_a_reservation_without_cap_policies_is_granted_and_says_why(stub, tenants, channel):
    reply = await stub.Reserve(reserve_request(channel=channel), metadata=tenants.metadata())
    assert reply.granted
    assert (reply.decision.stage, reply.decision.state, reply.decision.reason) == (
        "frequency",
        S.DELIVERY_STATE_PENDING,
        "no_cap_policy",
    )
    assert reply.decision.HasField("at")


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"user_id": ""}, ["user_id"]),
        ({"channel": C.CHANNEL_UNSPECIFIED}, ["channel"]),
        ({"channel": 99}, ["channel"]),
        ({"delivery_id": ""}, ["delivery_id"]),
        ({"user_id": "", "channel": 0, "delivery_id": ""}, ["user_id", "channel", "delivery_id"]),
        ({"kind": 7}, ["kind"]),
        ({"category": "Not A Category"}, ["category"]),
        ({"timezone": "Mars/Olympus"}, ["timezone"]),
        ({"delivery_id": "d" * 129}, ["delivery_id"]),
        ({"at": Timestamp(seconds=-(10**12))}, ["at"]),
        ({"at": Timestamp(seconds=253402300799)}, ["at"]),
    ],
    ids=[
        "no user",
        "unspecified channel",
        "unknown channel",
        "no delivery id",
        "all three",
        "unknown kind",
        "bad category",
        "unknown zone",
        "long delivery id",
        "invalid instant",
        "the year 9999",
    ],
)
async def test_an_invalid_reservation_is_rejected_naming_each_field(stub, tenants, changes, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Reserve(reserve_request(**changes), metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == fields


async def test_release_without_a_delivery_id_is_rejected_naming_it(stub, tenants):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Release(frequency_pb2.ReleaseRequest(), metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == ["delivery_id"]


async def test_release_of_a_reservation_that_held_no_slot_releases_nothing(stub, tenants):
    await stub.Reserve(reserve_request(delivery_id="d7"), metadata=tenants.metadata())
    reply = await stub.Release(
        frequency_pb2.ReleaseRequest(delivery_id="d7"), metadata=tenants.metadata()
    )
    assert reply.released is False


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("Reserve", reserve_request()),
        ("Release", frequency_pb2.ReleaseRequest(delivery_id="d1")),
        ("PutCapPolicy", frequency_pb2.PutCapPolicyRequest()),
        ("ListCapPolicies", frequency_pb2.ListCapPoliciesRequest()),
        ("DeleteCapPolicy", frequency_pb2.DeleteCapPolicyRequest(policy_id="x")),
        ("GetUsage", frequency_pb2.GetUsageRequest(user_id="u1")),
    ],
)
async def test_calls_without_a_key_are_unauthenticated(stub, method, request_):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def push_daily(**changes: Any) -> frequency_pb2.CapPolicy:
    values: dict[str, Any] = {
        "policy_id": "push_daily",
        "channel": C.CHANNEL_WEBPUSH,
        "kind": intent_pb2.KIND_MARKETING,
        "limit": 2,
        "window_kind": W.WINDOW_KIND_CALENDAR_DAY,
    }
    values.update(changes)
    return frequency_pb2.CapPolicy(**values)


def hours(n: float) -> Duration:
    span = Duration()
    span.FromTimedelta(timedelta(hours=n))
    return span


async def put(stub, tenants, policy: frequency_pb2.CapPolicy, tenant: str = "acme") -> None:
    await stub.PutCapPolicy(
        frequency_pb2.PutCapPolicyRequest(policy=policy), metadata=tenants.metadata(tenant)
    )


def push_at(delivery_id: str, **changes: Any) -> frequency_pb2.ReserveRequest:
    values: dict[str, Any] = {
        "channel": C.CHANNEL_WEBPUSH,
        "delivery_id": delivery_id,
        "timezone": "America/New_York",
        "at": to_timestamp(AT),
    }
    values.update(changes)
    return reserve_request(**values)


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"policy_id": "Push Daily"}, ["policy.policy_id"]),
        ({"policy_id": ""}, ["policy.policy_id"]),
        ({"channel": 42}, ["policy.channel"]),
        ({"category": "Cart!"}, ["policy.category"]),
        ({"kind": 9}, ["policy.kind"]),
        ({"limit": -1}, ["policy.limit"]),
        ({"window_kind": W.WINDOW_KIND_UNSPECIFIED}, ["policy.window_kind"]),
        ({"window_kind": W.WINDOW_KIND_ROLLING}, ["policy.window"]),
        ({"window": hours(24)}, ["policy.window"]),
        ({"window_kind": W.WINDOW_KIND_ROLLING, "window": hours(24 * 400)}, ["policy.window"]),
        ({"limit": 0}, ["policy.window_kind", "policy.limit"]),
        ({"limit": 0, "window_kind": 0, "min_gap": hours(-4)}, ["policy.min_gap"]),
    ],
    ids=[
        "id with capitals and space",
        "no id",
        "unknown channel",
        "bad category",
        "unknown kind",
        "negative limit",
        "a limit without a window",
        "rolling without a window",
        "a window for a calendar day",
        "a window over a year",
        "neither a limit nor a gap",
        "a negative gap",
    ],
)
async def test_an_invalid_policy_is_rejected_naming_each_field(stub, tenants, changes, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await put(stub, tenants, push_daily(**changes))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == fields


async def test_policies_are_put_listed_replaced_and_deleted_per_tenant(stub, tenants):
    weekly = frequency_pb2.CapPolicy(
        policy_id="weekly", limit=5, window_kind=W.WINDOW_KIND_ROLLING, window=hours(24 * 7)
    )
    gap = frequency_pb2.CapPolicy(policy_id="gap", min_gap=hours(4))
    for policy in (push_daily(), weekly, gap, push_daily(limit=3)):
        await put(stub, tenants, policy)
    await put(stub, tenants, push_daily(), tenant="globex")
    reply = await stub.ListCapPolicies(
        frequency_pb2.ListCapPoliciesRequest(), metadata=tenants.metadata()
    )
    assert [p.policy_id for p in reply.policies] == ["gap", "push_daily", "weekly"]
    assert reply.policies[1].limit == 3
    # An unspecified kind is stored as what it means: marketing.
    assert reply.policies[2] == frequency_pb2.CapPolicy(
        policy_id="weekly",
        limit=5,
        kind=intent_pb2.KIND_MARKETING,
        window_kind=W.WINDOW_KIND_ROLLING,
        window=hours(24 * 7),
    )
    assert reply.policies[0].min_gap == hours(4)

    delete = frequency_pb2.DeleteCapPolicyRequest(policy_id="weekly")
    assert (await stub.DeleteCapPolicy(delete, metadata=tenants.metadata())).deleted
    assert not (await stub.DeleteCapPolicy(delete, metadata=tenants.metadata())).deleted
    others = await stub.ListCapPolicies(
        frequency_pb2.ListCapPoliciesRequest(), metadata=tenants.metadata("globex")
    )
    assert [(p.policy_id, p.limit) for p in others.policies] == [("push_daily", 2)]


async def test_deleting_a_policy_needs_a_valid_id(stub, tenants):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteCapPolicy(
            frequency_pb2.DeleteCapPolicyRequest(), metadata=tenants.metadata()
        )
    assert list(bad_fields(err.value)) == ["policy_id"]


async def test_the_third_push_of_the_day_is_capped_until_the_recipients_midnight(stub, tenants):
    await put(stub, tenants, push_daily())
    for n in (1, 2):
        reply = await stub.Reserve(push_at(f"d{n}"), metadata=tenants.metadata())
        assert reply.granted
        assert (reply.decision.reason, reply.decision.detail) == (
            "reserved",
            "slot under push_daily",
        )
    reply = await stub.Reserve(push_at("d3"), metadata=tenants.metadata())
    assert not reply.granted
    assert (reply.decision.state, reply.decision.reason, reply.decision.detail) == (
        S.DELIVERY_STATE_CAPPED,
        "capped",
        "policy push_daily: 2/2 today",
    )
    # Midnight in New York is 04:00 UTC.
    assert from_timestamp(reply.decision.not_before) == datetime(2026, 6, 11, 4, tzinfo=UTC)
    again = await stub.Reserve(push_at("d1"), metadata=tenants.metadata())
    assert again.granted
    other_tenant = await stub.Reserve(push_at("d3"), metadata=tenants.metadata("globex"))
    assert other_tenant.decision.reason == "no_cap_policy"


async def test_a_dry_run_answers_as_reserve_would_and_keeps_nothing(stub, tenants):
    await put(stub, tenants, push_daily(limit=1))
    for _ in range(2):
        reply = await stub.Reserve(push_at("dry", dry_run=True), metadata=tenants.metadata())
        assert (reply.granted, reply.decision.reason) == (True, "reserved")
    assert (await stub.Reserve(push_at("real"), metadata=tenants.metadata())).granted


async def test_a_released_delivery_gives_its_slot_back(stub, tenants):
    await put(stub, tenants, push_daily(limit=1))
    await stub.Reserve(push_at("failed"), metadata=tenants.metadata())
    assert not (await stub.Reserve(push_at("next"), metadata=tenants.metadata())).granted
    release = frequency_pb2.ReleaseRequest(delivery_id="failed")
    assert not (await stub.Release(release, metadata=tenants.metadata("globex"))).released
    assert (await stub.Release(release, metadata=tenants.metadata())).released
    assert (await stub.Reserve(push_at("next"), metadata=tenants.metadata())).granted


async def test_usage_shows_each_policy_with_its_count_and_next_free_slot(stub, tenants):
    await put(stub, tenants, push_daily(limit=1))
    await put(stub, tenants, frequency_pb2.CapPolicy(policy_id="gap", min_gap=hours(4)))
    # Reserved now, so that the usage (always as of now) counts it.
    await stub.Reserve(push_at("d1", at=None), metadata=tenants.metadata())
    reply = await stub.GetUsage(
        frequency_pb2.GetUsageRequest(user_id="u1", timezone="Asia/Tokyo"),
        metadata=tenants.metadata(),
    )
    usage = {u.policy_id: u for u in reply.usage}
    assert (usage["push_daily"].used, usage["push_daily"].limit) == (1, 1)
    assert (
        from_timestamp(usage["push_daily"].next_slot_at).astimezone(ZoneInfo("Asia/Tokyo")).time()
        == datetime.min.time()
    )
    assert (usage["gap"].used, usage["gap"].limit) == (1, 0)
    assert usage["gap"].HasField("next_slot_at")
    empty = await stub.GetUsage(
        frequency_pb2.GetUsageRequest(user_id="u2"), metadata=tenants.metadata()
    )
    assert [(u.policy_id, u.used, u.HasField("next_slot_at")) for u in empty.usage] == [
        ("gap", 0, False),
        ("push_daily", 0, False),
    ]


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (frequency_pb2.GetUsageRequest(), ["user_id"]),
        (frequency_pb2.GetUsageRequest(user_id="u1", timezone="Nowhere"), ["timezone"]),
    ],
    ids=["no user", "unknown zone"],
)
async def test_an_invalid_usage_request_is_rejected_naming_the_field(
    stub, tenants, request_, fields
):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetUsage(request_, metadata=tenants.metadata())
    assert list(bad_fields(err.value)) == fields
