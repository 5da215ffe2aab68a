"""python -m services.intake"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.templates.v1 import templates_pb2, templates_pb2_grpc

from services.intake.consumer import EventsConsumer, decode_events
from services.intake.outbox import OutboxRelay
from services.intake.peers import Peers
from services.intake.server import IntakeServicer, store_and_count
from services.intake.settings import IntakeSettings
from services.intake.store import TABLES, IntakeStore, NewIntent, Stored
from services.templates.pinning import TemplatePinner
from services.templates.server import TemplatesServicer
from services.templates.store import TABLES as TEMPLATE_TABLES
from services.templates.store import TemplateStore
from shared.batching import GroupCommit
from shared.bus import topology
from shared.bus.broadcast import Broadcast
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = intake_pb2.DESCRIPTOR.services_by_name["Intake"].full_name
TEMPLATES = templates_pb2.DESCRIPTOR.services_by_name["Templates"].full_name


def events_by_intent(body: bytes) -> Iterable[tuple[Hashable, envelope_pb2.DeliveryEvent]]:
    for event in decode_events(body).events:
        yield (event.tenant_id, event.intent_id), event


class PeersLifetime:
    """The channels to the other stages close when intake stops."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self.peers.close()


def create_runtime(settings: IntakeSettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        store = IntakeStore(ctx.engine)
        relay = OutboxRelay(
            store, ctx.bus, poll_s=settings.outbox_poll_s, batch=settings.outbox_batch
        )

        async def flush(items: list[NewIntent]) -> list[Stored]:
            stored = await store_and_count(store, items)
            relay.hand_over(s.outbox for s in stored if s.outbox is not None)
            return stored

        committer: GroupCommit[NewIntent, Stored] = GroupCommit(flush)
        watch = Broadcast(
            ctx.bus,
            ctx.bus.topology.events_exchange,
            topology.EVENTS_DELIVERY_KEY,
            events_by_intent,
        )
        events = ctx.consumer(
            topology.EVENTS_INTAKE,
            decode_events,
            EventsConsumer(store).handle,
            linger_s=settings.events_linger_s,
        )
        peers = Peers(settings)
        # Intake owns content: the Templates API and its tables live here.
        templates = TemplateStore(ctx.engine)
        servicer = IntakeServicer(
            store, committer, watch, relay.hand_over, peers, TemplatePinner(templates)
        )
        return Parts(
            servicers=[
                (intake_pb2_grpc.add_IntakeServicer_to_server, servicer, SERVICE),
                (
                    templates_pb2_grpc.add_TemplatesServicer_to_server,
                    TemplatesServicer(templates),
                    TEMPLATES,
                ),
            ],
            components=[PeersLifetime(peers), committer, relay, watch, events],
        )

    return ServiceRuntime(settings, build, tables=(*TABLES, *TEMPLATE_TABLES))


if __name__ == "__main__":
    run(create_runtime(load_settings(IntakeSettings)))
