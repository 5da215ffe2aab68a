"""python -m services.inapp"""

from __future__ import annotations

from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc

from services.channels.service import create_worker_runtime
from services.inapp import store
from services.inapp.notices import watch_keys
from services.inapp.server import InboxServicer
from services.inapp.settings import InappSettings
from shared.bus.broadcast import Broadcast
from shared.runtime import Component, Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

CHANNEL = "inapp"
SERVICE = inbox_pb2.DESCRIPTOR.services_by_name["Inbox"].full_name


def create_runtime(settings: InappSettings) -> ServiceRuntime:
    async def extend(ctx: Context, components: list[Component]) -> Parts:
        watchers: Broadcast[inbox_pb2.InboxEvent] = Broadcast(
            ctx.bus, ctx.bus.topology.inbox_exchange, "", watch_keys
        )
        servicer = (
            inbox_pb2_grpc.add_InboxServicer_to_server,
            InboxServicer(ctx.engine, ctx.bus, watchers),
            SERVICE,
        )
        # Watchers first: a message delivered once the service is up is seen live.
        return Parts(servicers=[servicer], components=[watchers, *components])

    return create_worker_runtime(
        settings, CHANNEL, extend=extend, tables=store.TABLES, on_erased=store.erase_users
    )


if __name__ == "__main__":
    run(create_runtime(load_settings(InappSettings)))
