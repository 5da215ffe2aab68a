"""What the carrier tells us about a number, end to end on the real broker: the
sms worker with the twilio provider against the local peer, its webhooks over
real HTTP, and the real profile and eligibility services consuming the
feedback. A send refused with 21610 (the person texted STOP to the carrier)
withdraws consent and lists the number; a receipt with 30005/30006 lists it
as a hard bounce; 30003/30008 list nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from sendmesh.eligibility.v1 import eligibility_pb2 as epb
from sendmesh.intent.v1 import intent_pb2

from shared.bus import topology
from shared.bus.topology import Topology
from tests.conftest import TEST_RETRY_DELAYS, Tenants
from tests.integration.bus_helpers import publish_to_stage
from tests.integration.channels.support import (
    consumed,
    envelope,
    events_of,
    eventually,
    take_all,
)
from tests.integration.sms.test_webhook import (
    PHONE,
    TOKEN,
    Mesh,
    owner_of_the_number,
    sms_mesh,
    sms_settings,
    until,
)
from tests.peers.sms import ACCOUNT_SID, Scripted, SmsPeer, error_body

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
SEND = topology.send_stage("sms")
FROM = "+15005550006"
# Four mobile numbers, one per carrier error below.
NUMBERS = ["+4366412345601", "+4366412345602", "+4366412345603", "+4366412345604"]


@pytest.fixture
def peer() -> Iterator[SmsPeer]:
    # The provider signs its webhooks with the same token it takes as password.
    with SmsPeer(auth_token=TOKEN) as running_peer:
        yield running_peer


@pytest.fixture
async def mesh(
    make_settings: Callable[..., Any], tenants: Tenants, namespace: str, peer: SmsPeer
) -> AsyncIterator[Mesh]:
    settings = sms_settings(
        make_settings,
        provider="twilio",
        sms_api_base=peer.url,
        sms_account_sid=ACCOUNT_SID,
        sms_from_number=FROM,
    )
    async with sms_mesh(make_settings, tenants, namespace, settings) as running_mesh:
        yield running_mesh


async def test_a_send_refused_because_the_person_texted_stop_withdraws_consent_and_lists_the_number(
    mesh: Mesh, peer: SmsPeer, amqp_url: str
):
    await owner_of_the_number(mesh, "u1")
    refusal = error_body(400, 21610, f"Attempt to send to unsubscribed recipient {PHONE}")
    peer.script(Scripted(400, refusal))
    env = envelope("sms", users=("u1",))
    env.profiles["u1"].contacts.phone = PHONE
    topo = Topology(mesh.namespace, TEST_RETRY_DELAYS)

    await publish_to_stage(amqp_url, topo, SEND, env)
    await until(lambda: _withdrawn_and_listed(mesh))
    events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    # The peer really refused the one request it got, and nothing was sent.
    assert (peer.requests, peer.accepted) == (1, [])
    [failed] = [e for e in events if e.decision.stage == "sms"]
    assert (failed.decision.state, failed.decision.reason) == (
        S.DELIVERY_STATE_FAILED,
        "opted_out",
    )
    [consent] = await mesh.history("u1")
    assert (consent.channel, consent.category, consent.granted, consent.source) == (
        C.CHANNEL_SMS,
        "",
        False,
        "twilio",
    )
    [entry] = await mesh.listed()
    assert entry.reason == epb.SUPPRESSION_REASON_SMS_STOP
    assert PHONE not in entry.detail and PHONE[-7:] not in entry.detail


async def _withdrawn_and_listed(mesh: Mesh) -> bool:
    return len(await mesh.history("u1")) == 1 and len(await mesh.listed()) == 1


async def test_receipts_with_30005_or_30006_list_the_number_as_a_hard_bounce_and_30003_or_30008_do_not(
    mesh: Mesh, peer: SmsPeer, amqp_url: str
):
    topo = Topology(mesh.namespace, TEST_RETRY_DELAYS)
    users = [f"u{i}" for i in range(len(NUMBERS))]
    env = envelope("sms", users=users)
    for user, number in zip(users, NUMBERS, strict=True):
        env.profiles[user].contacts.phone = number
    sent_before = consumed(topo.queue(SEND))
    await publish_to_stage(amqp_url, topo, SEND, env)
    # Consumed: the worker recorded each message's SID before it acked.
    await eventually(lambda: consumed(topo.queue(SEND)) > sent_before)
    sid_of = {a.to: a.sid for a in peer.accepted}
    listing = topo.queue(topology.feedback_stage("eligibility"))
    before = consumed(listing)

    # Transient carrier errors first: had they published anything, it would
    # be in the feedback queues ahead of the bounces.
    codes = ("30003", "30008", "30005", "30006")
    replies = [
        await mesh.hooks.post("status", receipt(sid_of[number], number, code))
        for number, code in zip(NUMBERS, codes, strict=True)
    ]
    await until(lambda: _listed(mesh, 2))
    # The queue is FIFO: feedback from the first two receipts would have been
    # consumed no later than the bounces, and counted with them.
    await eventually(lambda: consumed(listing) >= before + 2)
    receipts = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    assert sorted(sid_of) == sorted(NUMBERS)
    assert [r.status_code for r in replies] == [200, 200, 200, 200]
    undelivered = [e.decision.detail for e in receipts if e.decision.reason == "undelivered"]
    assert sorted(undelivered) == [f"carrier status undelivered, error {c}" for c in sorted(codes)]
    assert consumed(listing) == before + 2  # the two bounces, nothing else
    entries = await mesh.listed()
    assert sorted((e.reason, e.detail) for e in entries) == [
        (epb.SUPPRESSION_REASON_HARD_BOUNCE, "sms_receipt: carrier error 30005"),
        (epb.SUPPRESSION_REASON_HARD_BOUNCE, "sms_receipt: carrier error 30006"),
    ]


def receipt(sid: str, to: str, code: str) -> dict[str, str]:
    """A status callback as the provider posts it for an undelivered message."""
    return {
        "MessageSid": sid,
        "MessageStatus": "undelivered",
        "ErrorCode": code,
        "To": to,
        "From": FROM,
        "AccountSid": ACCOUNT_SID,
    }


async def _listed(mesh: Mesh, n: int) -> bool:
    return len(await mesh.listed()) >= n
