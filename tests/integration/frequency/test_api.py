"""The Frequency gRPC API over a real server: Reserve and Release."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc
from sendmesh.intent.v1 import intent_pb2

from services.frequency.__main__ import create_runtime
from services.frequency.settings import FrequencySettings
from tests.conftest import running
from tests.integration.grpc_helpers import bad_fields, channel_to

C = intent_pb2.Channel
S = intent_pb2.DeliveryState


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
    ],
    ids=["no user", "unspecified channel", "unknown channel", "no delivery id", "all three"],
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
    ],
)
async def test_calls_without_a_key_are_unauthenticated(stub, method, request_):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, method)(request_)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
