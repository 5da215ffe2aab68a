"""python -m services.profile"""

from __future__ import annotations

from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.profile.consumer import PlanConsumer
from services.profile.server import ProfileServicer
from services.profile.settings import ProfileSettings
from services.profile.store import TABLES, ProfileStore
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = profile_pb2.DESCRIPTOR.services_by_name["Profiles"].full_name


def create_runtime(settings: ProfileSettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        store = ProfileStore(ctx.engine)
        stage = PlanConsumer(ctx.bus, store, settings.envelope_deliveries)
        consumer = ctx.consumer(topology.PLAN, decode_envelope, stage.handle)
        servicer = (
            profile_pb2_grpc.add_ProfilesServicer_to_server,
            ProfileServicer(store),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=[consumer])

    return ServiceRuntime(settings, build, tables=TABLES)


if __name__ == "__main__":
    run(create_runtime(load_settings(ProfileSettings)))
