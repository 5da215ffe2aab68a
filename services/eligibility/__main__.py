"""python -m services.eligibility"""

from __future__ import annotations

from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc

from services.eligibility.consumer import EligibilityConsumer
from services.eligibility.server import EligibilityServicer
from services.eligibility.settings import EligibilitySettings
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = eligibility_pb2.DESCRIPTOR.services_by_name["Eligibility"].full_name


def create_runtime(settings: EligibilitySettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        stage = EligibilityConsumer(ctx.bus)
        consumer = ctx.consumer(topology.ELIGIBILITY, decode_envelope, stage.handle)
        servicer = (
            eligibility_pb2_grpc.add_EligibilityServicer_to_server,
            EligibilityServicer(),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=[consumer])

    return ServiceRuntime(settings, build)


if __name__ == "__main__":
    run(create_runtime(load_settings(EligibilitySettings)))
