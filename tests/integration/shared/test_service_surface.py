"""What every service serves besides its API: /metrics, health, reflection."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc

from services.intake.__main__ import create_runtime
from services.intake.settings import IntakeSettings
from tests import servers
from tests.conftest import running
from tests.integration.intake.conftest import inapp_intent


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


async def test_metrics_endpoint_counts_rpcs_by_code_without_tenant_labels(make_settings, tenants):
    port = servers.free_port()
    runtime = create_runtime(make_settings(IntakeSettings, metrics_port=port))
    async with running(runtime) as rt, grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)
        await stub.Submit(
            intake_pb2.SubmitRequest(intent=inapp_intent()), metadata=tenants.metadata()
        )
        text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Submit"' in text
    assert 'sendmesh_intents_received_total{kind="marketing"}' in text
    assert "acme" not in text and "u1" not in text


async def test_reflection_lists_the_service_api(make_settings):
    runtime = create_runtime(make_settings(IntakeSettings))
    async with running(runtime) as rt, grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in replies[0].list_services_response.service}
    assert {"sendmesh.intake.v1.Intake", "grpc.health.v1.Health"} <= names


async def test_health_watch_streams_the_status_through_our_interceptors(make_settings):
    # The health servicer's Watch answers through context.write, not by
    # yielding; the interceptors used to iterate it and answer INTERNAL.
    runtime = create_runtime(make_settings(IntakeSettings))
    async with running(runtime) as rt, grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await asyncio.wait_for(call.read(), timeout=10)
        call.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
