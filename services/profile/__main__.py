"""python -m services.profile"""

from __future__ import annotations

from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from services.profile.consent_store import ConsentStore
from services.profile.consumer import PlanConsumer
from services.profile.contact_store import ContactStore
from services.profile.event_store import EventStore
from services.profile.feedback import FeedbackConsumer, decode_feedback
from services.profile.resolver import AudienceResolver
from services.profile.server import ProfileServicer, Stores
from services.profile.settings import ProfileSettings
from services.profile.store import TABLES, ProfileStore
from services.profile.topic_store import TopicStore
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Context, Parts, ServiceRuntime, run
from shared.settings import load_settings

SERVICE = profile_pb2.DESCRIPTOR.services_by_name["Profiles"].full_name


def create_runtime(settings: ProfileSettings) -> ServiceRuntime:
    async def build(ctx: Context) -> Parts:
        profiles, events = ProfileStore(ctx.engine), EventStore(ctx.engine)
        topics = TopicStore(ctx.engine)
        resolver = AudienceResolver(profiles, events, topics, settings.audience_page_size)
        stores = Stores(profiles, ConsentStore(ctx.engine), events, topics, resolver)
        stage = PlanConsumer(ctx.bus, profiles, events, resolver, settings.envelope_deliveries)
        consumer = ctx.consumer(topology.PLAN, decode_envelope, stage.handle)
        # SMS STOP/START into the consent history of the number's owners.
        keywords = FeedbackConsumer(ContactStore(ctx.engine))
        feedback = ctx.consumer(
            topology.feedback_stage("profile"), decode_feedback, keywords.handle
        )
        servicer = (
            profile_pb2_grpc.add_ProfilesServicer_to_server,
            ProfileServicer(stores, ctx.bus, allow_http_push=settings.webpush_allow_http),
            SERVICE,
        )
        return Parts(servicers=[servicer], components=[consumer, keywords, feedback])

    return ServiceRuntime(settings, build, tables=TABLES)


if __name__ == "__main__":
    run(create_runtime(load_settings(ProfileSettings)))
