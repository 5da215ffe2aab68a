"""The sms worker's token bucket against the local Twilio-style peer: what the
peer sees never arrives faster than the limit allows."""

from __future__ import annotations

import time

from services.sms.__main__ import create_runtime
from services.sms.settings import SmsSettings
from shared.bus import topology
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS, running
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import consumed, envelope, eventually, sample
from tests.peers.sms import ACCOUNT_SID, AUTH_TOKEN, SmsPeer

STAGE = topology.send_stage("sms")
RATE_PER_S, BURST = 20.0, 4
MESSAGES = 24
TO = "+14155552671"


async def test_the_peer_never_sees_more_than_the_burst_plus_the_rate_since_the_worker_started(
    make_settings, amqp_url, namespace
):
    topo = Topology(namespace, TEST_RETRY_DELAYS)
    env = envelope("sms", users=[f"u{i}" for i in range(MESSAGES)])
    for profile in env.profiles.values():
        profile.contacts.phone = TO
    throttled_before = sample(
        "sendmesh_provider_throttled_seconds_total", channel="sms", provider="twilio"
    )
    done_before = consumed(topo.queue(STAGE))
    with SmsPeer() as peer:
        settings = make_settings(
            SmsSettings,
            provider="twilio",
            sms_api_base=peer.url,
            sms_account_sid=ACCOUNT_SID,
            sms_auth_token=AUTH_TOKEN,
            sms_from_number="+15005550006",
            rate_per_s=RATE_PER_S,
            rate_burst=BURST,
        )
        # Before the bucket exists: every window below starts no later than it.
        started = time.monotonic()
        async with running(create_runtime(settings)):
            await publish_to_stage(amqp_url, topo, STAGE, env)
            await eventually(lambda: consumed(topo.queue(STAGE)) > done_before, within_s=30)
        arrivals = sorted(peer.arrivals)

    throttled = sample(
        "sendmesh_provider_throttled_seconds_total", channel="sms", provider="twilio"
    )
    # The limit really acted: one batch of 24 was held back, and all 24 arrived.
    assert throttled > throttled_before
    assert (len(arrivals), len(peer.accepted)) == (MESSAGES, MESSAGES)
    # Counted per window [start, each arrival]: bounded above, never a speed claim.
    for count, at in enumerate(arrivals, start=1):
        allowed = BURST + RATE_PER_S * (at - started)
        assert count <= allowed + 1e-6, f"{count} arrivals by {at - started:.3f}s"
