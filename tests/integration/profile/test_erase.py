"""GDPR erase: everything of the user goes, and profile.erased is announced."""

from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2 as pb

from services.profile.store import TABLES
from shared.bus import topology
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from tests.conftest import TEST_RETRY_DELAYS
from tests.integration.bus_helpers import drain
from tests.integration.profile.conftest import full_profile
from tests.integration.profile.test_api import erase, record, upsert
from tests.integration.profile.test_history_stores import consent_rows
from tests.integration.profile.test_store import rows_of


async def fill(profiles, tenants, user: str, tenant: str) -> None:
    meta = tenants.metadata(tenant)
    await upsert(profiles, tenants, full_profile(user), tenant=tenant)
    consent = pb.Consent(channel=intent_pb2.CHANNEL_EMAIL, granted=True, source="form")
    await profiles.SetConsent(pb.SetConsentRequest(user_id=user, consent=consent), metadata=meta)
    await profiles.Subscribe(pb.SubscribeRequest(topic="news", user_ids=[user]), metadata=meta)
    await record(profiles, tenants, user, "purchase", tenant=tenant)


async def test_erase_removes_every_row_of_the_user_and_announces_it_on_the_bus(
    profiles, tenants, profile_service: ServiceRuntime, amqp_url: str, namespace: str
):
    await fill(profiles, tenants, "u1", "acme")
    await fill(profiles, tenants, "u1", "globex")
    await fill(profiles, tenants, "u2", "acme")

    assert await erase(profiles, tenants, "u1") is True

    for model in TABLES:
        assert await rows_of(profile_service.engine, model, "acme", "u1") == 0
        assert await rows_of(profile_service.engine, model, "globex", "u1") == 1
        assert await rows_of(profile_service.engine, model, "acme", "u2") == 1
    assert len(await consent_rows(profile_service.engine)) == 2
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    # Every control queue hears it: the inbox and the scheduler act on it.
    [message] = await drain(amqp_url, topo.queue(topology.control_stage("inapp")), 1)
    notice = envelope_pb2.ControlEvent.FromString(message.body)
    assert notice.WhichOneof("event") == "profile_erased"
    assert (notice.profile_erased.tenant_id, notice.profile_erased.user_id) == ("acme", "u1")
    assert notice.profile_erased.HasField("at")
    assert message.routing_key == topology.EVENTS_ERASED_KEY
    assert message.delivery_mode == 2  # persistent


async def test_erasing_again_finds_nothing_but_still_announces_it(
    profiles, tenants, profile_service: ServiceRuntime, amqp_url: str, namespace: str
):
    await fill(profiles, tenants, "u1", "acme")
    assert await erase(profiles, tenants, "u1") is True
    assert await erase(profiles, tenants, "u1") is False
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    messages = await drain(amqp_url, topo.queue(topology.control_stage("email")), 2)
    users = [envelope_pb2.ControlEvent.FromString(m.body).profile_erased.user_id for m in messages]
    assert users == ["u1", "u1"]
