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


async def test_the_internal_key_acts_only_for_the_tenant_it_names(make_settings, tenants):
    from sendmesh.intake.v1 import intake_pb2_grpc

    from services.intake.__main__ import create_runtime
    from services.intake.settings import IntakeSettings
    from shared.auth import internal_metadata
    from tests.conftest import running
    from tests.integration.grpc_helpers import channel_to

    settings = make_settings(IntakeSettings, internal_key="internal-" + "x" * 40)
    async with running(create_runtime(settings)) as intake, channel_to(intake.port) as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)
        mine = await stub.Submit(
            intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata("acme")
        )
        request = intake_pb2.GetIntentRequest(intent_id=mine.intent_id)
        own = await stub.GetIntent(
            request, metadata=internal_metadata(settings.internal_key.get_secret_value(), "acme")
        )
        assert own.intent.intent_id == mine.intent_id
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await stub.GetIntent(
                request,
                metadata=internal_metadata(settings.internal_key.get_secret_value(), "globex"),
            )
        assert other.value.code() == grpc.StatusCode.NOT_FOUND
        no_tenant = (("authorization", f"Bearer {settings.internal_key.get_secret_value()}"),)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetIntent(request, metadata=no_tenant)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
