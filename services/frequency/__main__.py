"""python -m services.frequency"""

from __future__ import annotations

from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc

from services.frequency import store
from services.frequency.consumer import FrequencyConsumer
from services.frequency.control import ErasureConsumer, decode_control
from services.frequency.pruning import Pruner
from services.frequency.releases import ReleaseConsumer, decode_release
from services.frequency.server import FrequencyServicer
from services.frequency.settings import FrequencySettings
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Component, Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = frequency_pb2.DESCRIPTOR.services_by_name["Frequency"].full_name


def create_runtime(settings: FrequencySettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        stage = FrequencyConsumer(ctx.bus, ctx.engine)
        releases = ReleaseConsumer(ctx.engine)
        erasures = ErasureConsumer(ctx.engine)
        components: list[Component] = [
            ctx.consumer(topology.control_stage(settings.service), decode_control, erasures.handle),
            ctx.consumer(topology.RELEASE, decode_release, releases.handle),
            ctx.consumer(topology.FREQUENCY, decode_envelope, stage.handle),
            Pruner(ctx.engine, settings.prune_interval_s),
        ]
        servicer = (
            frequency_pb2_grpc.add_FrequencyServicer_to_server,
            FrequencyServicer(ctx.engine),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=components)

    return ServiceRuntime(
        settings, build, tables=store.TABLES, control_services=(settings.service,)
    )


if __name__ == "__main__":
    run(create_runtime(load_settings(FrequencySettings)))
