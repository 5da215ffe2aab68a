"""python -m services.frequency"""

from __future__ import annotations

from sendmesh.frequency.v1 import frequency_pb2, frequency_pb2_grpc

from services.frequency.consumer import FrequencyConsumer
from services.frequency.server import FrequencyServicer
from services.frequency.settings import FrequencySettings
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = frequency_pb2.DESCRIPTOR.services_by_name["Frequency"].full_name


def create_runtime(settings: FrequencySettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        stage = FrequencyConsumer(ctx.bus)
        consumer = ctx.consumer(topology.FREQUENCY, decode_envelope, stage.handle)
        servicer = (
            frequency_pb2_grpc.add_FrequencyServicer_to_server,
            FrequencyServicer(),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=[consumer])

    return ServiceRuntime(settings, build)


if __name__ == "__main__":
    run(create_runtime(load_settings(FrequencySettings)))
