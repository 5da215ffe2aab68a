"""The Scheduler gRPC API over a real server: ListDeferred and CancelDeferred."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

from services.scheduler import store
from services.scheduler.__main__ import create_runtime
from services.scheduler.settings import SchedulerSettings
from shared.bus import topology
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import drain, publish_to_stage
from tests.integration.grpc_helpers import bad_fields, channel_to
from tests.integration.scheduler.support import C, S, deferred_envelope

List = scheduler_pb2.ListDeferredRequest
Cancel = scheduler_pb2.CancelDeferredRequest
LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def topo(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


@pytest.fixture
async def scheduler(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(SchedulerSettings))) as runtime:
        yield runtime


@pytest.fixture
async def stub(scheduler) -> AsyncIterator[scheduler_pb2_grpc.SchedulerStub]:
    async with channel_to(scheduler.port) as channel:
        yield scheduler_pb2_grpc.SchedulerStub(channel)


async def defer(amqp_url, topo, runtime, *envs: envelope_pb2.Envelope) -> None:
    """Hand envelopes to the scheduler and wait until it holds them."""
    for env in envs:
        await publish_to_stage(amqp_url, topo, topology.DEFERRED, env)
    expect = sum(len(e.deliveries) for e in envs)
    deadline = time.monotonic() + 5
    while await store.pending_deliveries(runtime.engine) < expect:
        assert time.monotonic() < deadline, "the scheduler did not store the deferrals"
        await asyncio.sleep(0.05)


async def test_listing_shows_the_callers_deferred_deliveries_soonest_first_in_pages(
    stub, scheduler, tenants, amqp_url, topo
):
    await defer(
        amqp_url, topo, scheduler,
        deferred_envelope(LATER + timedelta(minutes=2), intent="i1", users=("u1", "u2")),
        deferred_envelope(LATER, intent="i2", users=("u3",), stage="frequency", reason="capped"),
        deferred_envelope(LATER, tenant="globex", intent="i3", users=("u9",)),
    )  # fmt: skip
    md = tenants.metadata("acme")
    first = await stub.ListDeferred(List(page_size=2), metadata=md)
    assert [d.user_id for d in first.deferred] == ["u3", "u1"]
    top = first.deferred[0]
    assert (top.intent_id, top.delivery_id, top.channel) == ("i2", "i2-u3-email", C.CHANNEL_EMAIL)
    assert (top.stage, top.reason) == ("frequency", "capped")
    assert top.due_at.ToDatetime(tzinfo=UTC) == LATER
    rest = await stub.ListDeferred(List(page_size=2, page_token=first.next_page_token), metadata=md)
    assert [d.user_id for d in rest.deferred] == ["u2"]
    assert rest.next_page_token == ""

    by_intent = await stub.ListDeferred(List(intent_id="i1"), metadata=md)
    assert [d.user_id for d in by_intent.deferred] == ["u1", "u2"]
    theirs = await stub.ListDeferred(List(), metadata=tenants.metadata("globex"))
    assert [d.user_id for d in theirs.deferred] == ["u9"]


async def test_cancelling_drops_only_the_callers_intent_and_reports_each_delivery_cancelled(
    stub, scheduler, tenants, amqp_url, topo
):
    await defer(
        amqp_url, topo, scheduler,
        deferred_envelope(LATER, intent="i1", users=("u1", "u2")),
        deferred_envelope(LATER, tenant="globex", intent="i1", users=("u1",)),
    )  # fmt: skip
    reply = await stub.CancelDeferred(Cancel(intent_id="i1"), metadata=tenants.metadata())
    assert reply.cancelled == 2
    [reported] = await drain(amqp_url, topo.queue(topology.EVENTS_INTAKE), 1)
    events = envelope_pb2.EventBatch.FromString(reported.body).events
    assert sorted((e.tenant_id, e.delivery_id) for e in events) == [
        ("acme", "i1-u1-email"),
        ("acme", "i1-u2-email"),
    ]
    assert {e.decision.state for e in events} == {S.DELIVERY_STATE_CANCELLED}

    assert (await stub.ListDeferred(List(), metadata=tenants.metadata())).deferred == []
    theirs = await stub.ListDeferred(List(), metadata=tenants.metadata("globex"))
    assert [d.user_id for d in theirs.deferred] == ["u1"]
    again = await stub.CancelDeferred(Cancel(intent_id="i1"), metadata=tenants.metadata())
    assert again.cancelled == 0


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (List(page_size=-1), ["page_size"]),
        (List(page_token="nonsense"), ["page_token"]),
        (List(intent_id="x" * 65), ["intent_id"]),
        (List(intent_id="x" * 65, page_size=-1), ["intent_id", "page_size"]),
    ],
    ids=["negative page size", "bad token", "long intent id", "two fields"],
)
async def test_an_invalid_listing_is_rejected_naming_each_field(stub, tenants, request_, fields):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListDeferred(request_, metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == fields


async def test_a_page_token_of_another_query_is_rejected(stub, scheduler, tenants, amqp_url, topo):
    await defer(amqp_url, topo, scheduler, deferred_envelope(LATER, users=("u1", "u2")))
    md = tenants.metadata()
    first = await stub.ListDeferred(List(page_size=1), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListDeferred(
            List(page_size=1, intent_id="i1", page_token=first.next_page_token), metadata=md
        )
    assert list(bad_fields(err.value)) == ["page_token"]


@pytest.mark.parametrize("intent_id", ["", "x" * 65])
async def test_a_cancel_without_a_valid_intent_id_is_rejected_naming_it(stub, tenants, intent_id):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CancelDeferred(Cancel(intent_id=intent_id), metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_fields(err.value)) == ["intent_id"]


async def test_calls_without_an_api_key_are_refused(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListDeferred(List())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
