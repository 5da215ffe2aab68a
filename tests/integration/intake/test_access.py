from __future__ import annotations

import grpc
import pytest
from sendmesh.intake.v1 import intake_pb2

from tests.integration.intake.conftest import inapp_intent


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer smk_not-a-real-key"),), (("x-api-key", ""),)],
    ids=["missing", "wrong", "empty"],
)
async def test_calls_without_a_valid_key_are_unauthenticated(stub, metadata):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Submit(intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_tenant_never_sees_another_tenants_intent(stub, tenants):
    mine = await stub.Submit(
        intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata("acme")
    )
    for call, request in [
        (stub.GetIntent, intake_pb2.GetIntentRequest(intent_id=mine.intent_id)),
        (stub.CancelIntent, intake_pb2.CancelIntentRequest(intent_id=mine.intent_id)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=tenants.metadata("globex"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.WatchIntent(
            intake_pb2.WatchIntentRequest(intent_id=mine.intent_id),
            metadata=tenants.metadata("globex"),
        ):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    own = await stub.GetIntent(
        intake_pb2.GetIntentRequest(intent_id=mine.intent_id), metadata=tenants.metadata("acme")
    )
    assert own.intent.intent_id == mine.intent_id


async def test_health_is_open_and_serving_without_a_key(intake):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{intake.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
