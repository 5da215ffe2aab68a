"""Readiness follows the broker, and a service heals by itself after an outage.

The in-app worker runs in this process with its AMQP URL pointing at a TCP
proxy in front of the shared RabbitMQ (which is never restarted). The proxy
cuts the worker's connection and turns reconnects away for a while, then lets
them through: readiness must go NOT_SERVING and come back SERVING on its own,
liveness must not move, and the restored connection must consume and publish
as the first one did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc

from services.inapp.__main__ import create_runtime
from services.inapp.settings import InappSettings
from shared.bus import topology
from shared.bus.topology import Topology
from shared.grpc.server import LIVENESS
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS, Tenants, running
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import envelope, events_of, take_all
from tests.tcp_proxy import TcpProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SEND = topology.send_stage("inapp")
# Not a default anywhere: seeing it on the wire proves it is our consumers' qos.
PREFETCH = 37
# aio-pika's default is 5 s between attempts; the URL may say otherwise.
RECONNECT_QUERY = "reconnect_interval=0.5"
OUTAGE_S = 2.0
WITHIN_S = 15.0

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.for_url(amqp_url)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def worker(
    make_settings: Callable[..., Any], proxy: TcpProxy, amqp_url: str
) -> AsyncIterator[ServiceRuntime]:
    settings = make_settings(
        InappSettings, amqp_url=proxy.url(amqp_url, RECONNECT_QUERY), prefetch=PREFETCH
    )
    async with running(create_runtime(settings)) as runtime:
        yield runtime


@pytest.fixture
async def health(worker: ServiceRuntime) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        yield health_pb2_grpc.HealthStub(channel)


async def status_of(health: health_pb2_grpc.HealthStub, service: str = "") -> int:
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def until_status(health: health_pb2_grpc.HealthStub, wanted: int) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while await status_of(health) != wanted:
        if asyncio.get_running_loop().time() > deadline:
            name = health_pb2.HealthCheckResponse.ServingStatus.Name(wanted)
            raise AssertionError(f"readiness never became {name} within {WITHIN_S} s")
        await asyncio.sleep(0.05)


async def inbox_intents(port: int, tenants: Tenants) -> set[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        listing = await inbox_pb2_grpc.InboxStub(channel).ListInbox(
            inbox_pb2.ListInboxRequest(user_id="u1"), metadata=tenants.metadata("acme")
        )
    return {m.intent_id for m in listing.messages}


async def until_in_inbox(port: int, tenants: Tenants, intent_ids: set[str]) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not intent_ids <= await inbox_intents(port, tenants):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not in the inbox within {WITHIN_S} s: {intent_ids}")
        await asyncio.sleep(0.05)


async def sent_events_for(amqp_url: str, topo: Topology, intent_ids: set[str]) -> set[str]:
    """Intents with a SENT event on intake's events queue (taken off it)."""
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    seen: set[str] = set()
    while not intent_ids <= seen and asyncio.get_running_loop().time() < deadline:
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))
        seen |= {e.intent_id for e in events if e.decision.reason == "sent"}
        await asyncio.sleep(0.05)
    return seen & intent_ids


async def test_a_worker_cut_off_from_the_broker_goes_unready_then_reconnects_and_consumes_by_itself(
    worker: ServiceRuntime,
    health: health_pb2_grpc.HealthStub,
    proxy: TcpProxy,
    amqp_url: str,
    namespace: str,
    tenants: Tenants,
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    before: envelope_pb2.Envelope = envelope("inapp")
    await publish_to_stage(amqp_url, topo, SEND, before)
    await until_in_inbox(worker.port, tenants, {before.intent_id})
    assert await status_of(health) == SERVING
    [first] = proxy.live

    proxy.refuse()
    assert await proxy.cut_all() == 1
    await until_status(health, NOT_SERVING)
    # The fault happened: the worker's only connection is gone, and it is
    # knocking on a door that stays shut.
    await asyncio.wait_for(proxy.refusals(2), WITHIN_S)
    assert first.cut and proxy.live == []
    assert await status_of(health, LIVENESS) == SERVING
    during: envelope_pb2.Envelope = envelope("inapp")
    await publish_to_stage(amqp_url, topo, SEND, during)  # waits on the broker
    await asyncio.sleep(OUTAGE_S)
    assert await status_of(health) == NOT_SERVING
    assert during.intent_id not in await inbox_intents(worker.port, tenants)

    proxy.allow()
    await until_status(health, SERVING)
    after: envelope_pb2.Envelope = envelope("inapp")
    await publish_to_stage(amqp_url, topo, SEND, after)
    await until_in_inbox(worker.port, tenants, {during.intent_id, after.intent_id})
    # Its output went out on the restored confirming channel, acked after the confirm.
    assert await sent_events_for(amqp_url, topo, {during.intent_id, after.intent_id}) == {
        during.intent_id,
        after.intent_id,
    }
    assert await status_of(health, LIVENESS) == SERVING

    # One new connection, and on it the worker asked for what the first one had:
    # confirms on the publishing channel, its qos, a consumer on each of its queues.
    [second] = proxy.live
    assert second is not first
    for link in (first, second):
        assert len(link.sniffer.confirm_channels()) >= 1
        assert set(link.sniffer.prefetch_counts()) >= {PREFETCH}
        assert {topo.queue(SEND), topo.queue(topology.control_stage("inapp"))} <= set(
            link.sniffer.consumed_queues()
        )
    assert sorted(first.sniffer.consumed_queues()) == sorted(second.sniffer.consumed_queues())
