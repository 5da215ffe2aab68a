"""Email feedback end to end on the real broker: an SMTP relay refusing a
mailbox (550 5.1.1) and a complaint posted to the webhook reach the real
eligibility service's suppression list, and the next intent is suppressed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from sendmesh.bus.v1 import envelope_pb2, feedback_pb2
from sendmesh.eligibility.v1 import eligibility_pb2 as pb
from sendmesh.eligibility.v1 import eligibility_pb2_grpc
from sendmesh.intent.v1 import intent_pb2

from services.eligibility.__main__ import create_runtime as eligibility_runtime
from services.eligibility.settings import EligibilitySettings
from services.eligibility.suppression import contact_hash
from services.email.__main__ import create_runtime as email_runtime
from services.email.settings import EmailSettings
from shared.bus import topology
from shared.bus.topology import Topology
from tests import servers
from tests.conftest import TEST_RETRY_DELAYS, Tenants, running
from tests.integration.bus_helpers import drain, publish_to_stage, queue_depth
from tests.integration.channels.support import consumed, envelope, events_of, eventually, take_all
from tests.integration.eligibility.conftest import cart_reminder, opted_in
from tests.integration.grpc_helpers import channel_to
from tests.peers.smtp import HOST, SmtpPeer

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
K = feedback_pb2.FeedbackKind
HASH_KEY = "feedback-test-hash-key"
SEND = topology.send_stage("email")
FEEDBACK = topology.feedback_stage("eligibility")
SMTP: dict[str, Any] = {
    "provider": "smtp",
    "smtp_host": HOST,
    "smtp_timeout_s": 5.0,
    "from_address": "news@shop.example",
    "unsubscribe_url": "https://shop.example/unsubscribe/{delivery_id}",
}


def _topology(namespace: str) -> Topology:
    return Topology(namespace, TEST_RETRY_DELAYS)


def eligibility_settings(make_settings: Callable[..., Any]) -> EligibilitySettings:
    return make_settings(EligibilitySettings, suppression_hash_key=HASH_KEY)


async def listed(port: int, tenants: Tenants) -> list[pb.Suppression]:
    async with channel_to(port) as channel:
        stub = eligibility_pb2_grpc.EligibilityStub(channel)
        reply = await stub.ListSuppressions(
            pb.ListSuppressionsRequest(), metadata=tenants.metadata()
        )
    return list(reply.entries)


async def until_listed(port: int, tenants: Tenants, n: int) -> list[pb.Suppression]:
    for _ in range(500):
        entries = await listed(port, tenants)
        if len(entries) >= n:
            return entries
        await asyncio.sleep(0.02)
    raise AssertionError(f"{n} suppression(s) never listed")


def next_intent(user: str) -> envelope_pb2.Envelope:
    """A marketing email to `user` as profile hands it to eligibility."""
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id=f"next-{user}", intent=cart_reminder())
    env.deliveries.add(delivery_id=f"next-{user}-email", user_id=user, channel=C.CHANNEL_EMAIL)
    env.profiles[user].CopyFrom(opted_in(user))
    return env


async def test_a_mailbox_refused_550_5_1_1_is_listed_as_a_hard_bounce_and_the_next_intent_suppressed(
    make_settings, tenants, amqp_url, namespace
):
    topo = _topology(namespace)
    sent_before = consumed(topo.queue(SEND))
    eligibility = eligibility_runtime(eligibility_settings(make_settings))
    with SmtpPeer(
        replies={"gone@example.com": "550 5.1.1 <gone@example.com>: no such user"}
    ) as peer:
        email = email_runtime(make_settings(EmailSettings, **SMTP, smtp_port=peer.port))
        async with running(eligibility), running(email):
            await publish_to_stage(amqp_url, topo, SEND, envelope("email", users=["gone"]))
            await eventually(lambda: consumed(topo.queue(SEND)) > sent_before)
            [entry] = await until_listed(eligibility.port, tenants, 1)
            decided_before = consumed(topo.queue(topology.ELIGIBILITY))
            await publish_to_stage(amqp_url, topo, topology.ELIGIBILITY, next_intent("gone"))
            await eventually(lambda: consumed(topo.queue(topology.ELIGIBILITY)) > decided_before)
        events = events_of(await take_all(amqp_url, topo.queue(topology.EVENTS_INTAKE)))

    # The SMTP session really refused the mailbox: nothing was accepted.
    assert peer.received == []
    assert (entry.channel, entry.reason) == (C.CHANNEL_EMAIL, pb.SUPPRESSION_REASON_HARD_BOUNCE)
    assert entry.contact_hash == contact_hash(
        HASH_KEY.encode(), C.CHANNEL_EMAIL, "gone@example.com"
    )
    assert entry.detail == "smtp: smtp 550 5.1.1 at rcpt"
    by_delivery = {e.delivery_id: e.decision for e in events}
    failed = next(d for k, d in by_delivery.items() if not k.startswith("next-"))
    assert (failed.state, failed.reason) == (S.DELIVERY_STATE_FAILED, "invalid_contact")
    suppressed = by_delivery["next-gone-email"]
    assert (suppressed.state, suppressed.reason, suppressed.detail) == (
        S.DELIVERY_STATE_SUPPRESSED,
        "suppressed",
        "on the suppression list (hard_bounce)",
    )


async def test_only_a_5_1_x_refusal_becomes_feedback_and_it_is_published_before_the_ack(
    make_settings, amqp_url, namespace
):
    topo = _topology(namespace)
    sent_before = consumed(topo.queue(SEND))
    replies = {
        "gone@example.com": "550 5.1.1 no such user",
        "blocked@example.com": "550 5.7.1 rejected by policy",
    }
    with SmtpPeer(replies=replies) as peer:
        email = email_runtime(make_settings(EmailSettings, **SMTP, smtp_port=peer.port))
        async with running(email):
            await publish_to_stage(
                amqp_url, topo, SEND, envelope("email", users=["gone", "blocked", "ann"])
            )
            # Acked only after its output was confirmed: the feedback is there now.
            await eventually(lambda: consumed(topo.queue(SEND)) > sent_before)
            waiting = await queue_depth(amqp_url, topo.queue(FEEDBACK))
        [message] = await drain(amqp_url, topo.queue(FEEDBACK), 1)
        await drain(amqp_url, topo.queue(topology.feedback_stage("profile")), 1)

    assert [r.rcpt_tos for r in peer.received] == [["ann@example.com"]]
    assert waiting == 1
    [item] = feedback_pb2.FeedbackBatch.FromString(message.body).items
    assert (item.tenant_id, item.channel, item.kind) == (
        "acme",
        C.CHANNEL_EMAIL,
        K.FEEDBACK_KIND_HARD_BOUNCE,
    )
    assert (item.contact, item.user_id, item.source) == ("gone@example.com", "gone", "smtp")
    assert item.HasField("occurred_at")


async def test_a_complaint_posted_with_the_tenants_key_lists_the_address(
    make_settings, tenants, amqp_url, namespace
):
    port = servers.free_port()
    eligibility = eligibility_runtime(eligibility_settings(make_settings))
    email = email_runtime(make_settings(EmailSettings, webhook_port=port))
    report = {"kind": "complaint", "address": "Angry@Example.com", "message_id": "<d-1@shop>"}
    async with running(eligibility), running(email), httpx.AsyncClient() as http:
        reply = await http.post(
            f"http://127.0.0.1:{port}/webhooks/email/feedback",
            json=report,
            headers={"Authorization": f"Bearer {tenants.keys['acme']}"},
        )
        [entry] = await until_listed(eligibility.port, tenants, 1)

    assert (reply.status_code, reply.json()) == (200, {"accepted": 1})
    assert entry.reason == pb.SUPPRESSION_REASON_COMPLAINT
    assert entry.contact_hash == contact_hash(
        HASH_KEY.encode(), C.CHANNEL_EMAIL, "angry@example.com"
    )
    assert entry.detail == "email_webhook: complaint reported by webhook"


async def test_a_report_without_a_known_key_for_another_tenant_or_malformed_publishes_nothing(
    make_settings, tenants, amqp_url, namespace
):
    topo = _topology(namespace)
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}/webhooks/email/feedback"
    acme = {"Authorization": f"Bearer {tenants.keys['acme']}"}
    report = {"kind": "bounce", "address": "ann@example.com"}
    email = email_runtime(make_settings(EmailSettings, webhook_port=port))
    async with running(email), httpx.AsyncClient() as http:
        no_key = await http.post(url, json=report)
        wrong_key = await http.post(url, json=report, headers={"x-api-key": "smk_nope"})
        other = await http.post(url, json=report | {"tenant": "globex"}, headers=acme)
        bad = await http.post(url, json={"kind": "soft", "address": "ann-at-example"}, headers=acme)
        not_json = await http.post(url, content=b"kind=bounce", headers=acme)
        nothing = await queue_depth(amqp_url, topo.queue(FEEDBACK))
        good = await http.post(url, json=report, headers={"x-api-key": tenants.keys["acme"]})
        one = await queue_depth(amqp_url, topo.queue(FEEDBACK))

    assert [r.status_code for r in (no_key, wrong_key, other, bad, not_json)] == [
        401,
        401,
        403,
        400,
        400,
    ]
    assert bad.json() == {
        "errors": {"kind": "bounce or complaint", "address": "not an email address"}
    }
    assert "ann-at-example" not in bad.text
    # The same broker shows a report that is accepted: the zero above is real.
    assert (nothing, good.status_code, one) == (0, 200, 1)
