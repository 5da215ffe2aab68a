"""python -m services.eligibility"""

from __future__ import annotations

from sendmesh.eligibility.v1 import eligibility_pb2, eligibility_pb2_grpc

from services.eligibility import store
from services.eligibility.consumer import EligibilityConsumer
from services.eligibility.feedback import FeedbackConsumer, decode_feedback
from services.eligibility.server import EligibilityServicer
from services.eligibility.settings import DEV_SUPPRESSION_HASH_KEY, EligibilitySettings
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.logs import get_logger
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = eligibility_pb2.DESCRIPTOR.services_by_name["Eligibility"].full_name
log = get_logger(__name__)


def create_runtime(settings: EligibilitySettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        if settings.suppression_hash_key.get_secret_value() == DEV_SUPPRESSION_HASH_KEY:
            log.warning("suppression_hash_key_is_the_dev_default")
        stage = EligibilityConsumer(ctx.bus, ctx.engine, settings)
        consumer = ctx.consumer(topology.ELIGIBILITY, decode_envelope, stage.handle)
        # Bounces, complaints and SMS STOP/START onto the suppression list.
        feedback = ctx.consumer(
            topology.feedback_stage(topology.ELIGIBILITY),
            decode_feedback,
            FeedbackConsumer(ctx.engine, settings).handle,
        )
        servicer = (
            eligibility_pb2_grpc.add_EligibilityServicer_to_server,
            EligibilityServicer(ctx.engine, settings),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=[consumer, feedback])

    return ServiceRuntime(settings, build, tables=store.TABLES)


if __name__ == "__main__":
    run(create_runtime(load_settings(EligibilitySettings)))
