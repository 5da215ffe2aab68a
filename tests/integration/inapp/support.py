"""Helpers for the inbox tests: a stub, deliveries through send.inapp, seeded rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sendmesh.inapp.v1 import inbox_pb2_grpc

from services.inapp import store
from shared.bus import topology
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import consumed, eventually

STAGE = topology.send_stage("inapp")
# In the past: a cut-off later than now is taken as now.
T0 = datetime(2024, 11, 23, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def inbox_stub(runtime: ServiceRuntime) -> AsyncIterator[inbox_pb2_grpc.InboxStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as channel:
        yield inbox_pb2_grpc.InboxStub(channel)


async def deliver(amqp_url: str, topo: Topology, *envs: Any) -> None:
    """Publish envelopes to send.inapp and wait until the worker has finished them."""
    start = consumed(topo.queue(STAGE))
    for env in envs:
        await publish_to_stage(amqp_url, topo, STAGE, env)
    await eventually(lambda: consumed(topo.queue(STAGE)) >= start + len(envs))


async def seed(
    runtime: ServiceRuntime, count: int, tenant: str = "acme", user: str = "u1"
) -> list[str]:
    """`count` messages in the service's own inbox table, one minute apart from T0;
    their ids, oldest first. Quicker than the queue when the delivery is not the point."""
    assert runtime.engine is not None
    rows = [
        store.InboxMessage(
            message_id=f"{tenant}-{user}-m{n}",
            tenant_id=tenant,
            user_id=user,
            delivery_id=f"{user}-d{n}",
            intent_id="i1",
            title=f"message {n}",
            created_at=T0 + timedelta(minutes=n),
        )
        for n in range(1, count + 1)
    ]
    await store.insert_new(runtime.engine, rows)
    return [r.message_id for r in rows]


def field_violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []
