from __future__ import annotations

import grpc
import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2

from shared.bus import topology
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain
from tests.integration.grpc_helpers import bad_fields
from tests.integration.intake.conftest import inapp_intent, stored_intents


async def test_submitted_intent_is_published_to_the_plan_queue(stub, tenants, amqp_url, namespace):
    reply = await stub.Submit(
        intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata()
    )
    assert reply.intent_id and not reply.duplicate
    got = await drain(amqp_url, Topology(namespace, TEST_RETRY_DELAYS).queue(topology.PLAN), 1)
    env = envelope_pb2.Envelope.FromString(got[0].body)
    assert (env.tenant_id, env.intent_id) == ("acme", reply.intent_id)
    assert list(env.intent.audience.user_ids) == ["u1"]


async def test_repeated_key_returns_the_first_intent_and_publishes_nothing_new(
    stub, tenants, amqp_url, namespace
):
    request = intake_pb2.SubmitRequest(intent=inapp_intent("same"))
    first = await stub.Submit(request, metadata=tenants.metadata())
    again = await stub.Submit(request, metadata=tenants.metadata())
    assert again.intent_id == first.intent_id and again.duplicate
    plan = Topology(namespace, TEST_RETRY_DELAYS).queue(topology.PLAN)
    assert len(await drain(amqp_url, plan, 1)) == 1
    assert len(await drain(amqp_url, plan, 1, within=1.0)) == 0


async def test_same_key_with_different_content_is_rejected(stub, tenants):
    await stub.Submit(
        intake_pb2.SubmitRequest(intent=inapp_intent("k")), metadata=tenants.metadata()
    )
    other = inapp_intent("k", users=("u2",))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Submit(intake_pb2.SubmitRequest(intent=other), metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "intent.idempotency_key" in bad_fields(err.value)


async def test_the_same_key_in_another_tenant_is_another_intent(stub, tenants):
    request = intake_pb2.SubmitRequest(intent=inapp_intent("shared-key"))
    a = await stub.Submit(request, metadata=tenants.metadata("acme"))
    b = await stub.Submit(request, metadata=tenants.metadata("globex"))
    assert a.intent_id != b.intent_id and not b.duplicate


async def test_concurrent_submits_of_one_key_create_one_intent(stub, tenants):
    import asyncio

    request = intake_pb2.SubmitRequest(intent=inapp_intent("racy"))
    replies = await asyncio.gather(
        *(stub.Submit(request, metadata=tenants.metadata()) for _ in range(20))
    )
    assert len({r.intent_id for r in replies}) == 1
    assert sum(not r.duplicate for r in replies) == 1


async def test_submit_batch_accepts_many_and_reports_a_reused_key_per_item(stub, tenants):
    await stub.Submit(
        intake_pb2.SubmitRequest(intent=inapp_intent("taken")), metadata=tenants.metadata()
    )
    intents = [inapp_intent(f"b{i}") for i in range(50)] + [inapp_intent("taken", users=("zz",))]
    reply = await stub.SubmitBatch(
        intake_pb2.SubmitBatchRequest(intents=intents), metadata=tenants.metadata()
    )
    assert len(reply.results) == 51
    assert all(r.intent_id and not r.HasField("error") for r in reply.results[:50])
    assert reply.results[50].error.code == grpc.StatusCode.ALREADY_EXISTS.value[0]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda i: i.audience.ClearField("user_ids"), "intent.audience.user_ids"),
        (lambda i: i.channels.append(99), "intent.channels[1]"),
        (lambda i: i.ClearField("kind"), "intent.kind"),
        (lambda i: setattr(i, "idempotency_key", ""), "intent.idempotency_key"),
        (lambda i: i.timing.expires_at.FromSeconds(1_000), "intent.timing.expires_at"),
        (lambda i: setattr(i.timing.send_at, "nanos", -5), "intent.timing.send_at"),
        (lambda i: i.ClearField("content"), "intent.content"),
        (lambda i: i.channels.append(1), "intent.content.inline.email"),
        (lambda i: i.exclude_if.add(event="purchase"), "intent.exclude_if[0].within"),
    ],
)
async def test_invalid_intent_is_rejected_naming_the_field_and_nothing_is_stored(
    intake, stub, tenants, mutate, field
):
    intent = inapp_intent()
    mutate(intent)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Submit(intake_pb2.SubmitRequest(intent=intent), metadata=tenants.metadata())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in bad_fields(err.value)
    assert await stored_intents(intake) == 0


async def test_oversized_batch_is_rejected_as_a_whole(intake, stub, tenants):
    intents = [inapp_intent(f"k{i}") for i in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitBatch(
            intake_pb2.SubmitBatchRequest(intents=intents), metadata=tenants.metadata()
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "intents" in bad_fields(err.value)
    assert await stored_intents(intake) == 0


async def test_batch_with_one_bad_intent_stores_none_of_them(intake, stub, tenants):
    intents = [inapp_intent("ok1"), inapp_intent("ok2"), inapp_intent("bad", users=())]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitBatch(
            intake_pb2.SubmitBatchRequest(intents=intents), metadata=tenants.metadata()
        )
    assert "intents[2].audience.user_ids" in bad_fields(err.value)
    assert await stored_intents(intake) == 0
