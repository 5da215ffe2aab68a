"""The vapid provider against a local push service that really decrypts the
aes128gcm body and really verifies the VAPID JWT: no mocks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from services.channels.provider import Contact, OutgoingMessage, SendResult
from services.webpush.providers.vapid import VapidWebPushProvider, encrypt
from services.webpush.settings import WebPushSettings
from shared import reasons
from tests.peers.webpush import Subscription, WebPushPeer
from tests.servers import free_port

SUBJECT = "mailto:ops@sendmesh.test"
VAPID_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)
CONTENT = {
    "title": "Cart",
    "body": "You left something — ünïcode too",
    "icon": "https://shop.example/icon.png",
    "url": "https://shop.example/cart",
}


@pytest.fixture
def peer() -> Iterator[WebPushPeer]:
    with WebPushPeer() as running:
        yield running


def provider(**overrides: Any) -> VapidWebPushProvider:
    settings: dict[str, Any] = {
        "provider": "vapid",
        "vapid_private_key": SecretStr(VAPID_PEM),
        "vapid_subject": SUBJECT,
        "webpush_allow_http": True,
        "webpush_allow_private_endpoints": True,
        "webpush_timeout_s": 5.0,
        **overrides,
    }
    return VapidWebPushProvider(WebPushSettings(**settings))


def message(*subs: Subscription, metadata: dict[str, str] | None = None) -> OutgoingMessage:
    return OutgoingMessage(
        tenant_id="acme",
        intent_id="i-1",
        delivery_id="d-1",
        user_id="u1",
        channel="webpush",
        category="cart_reminder",
        kind="transactional",
        content=CONTENT,
        contact=Contact(webpush=tuple(s.target() for s in subs)),
        metadata=metadata or {},
    )


async def send_one(msg: OutgoingMessage, **overrides: Any) -> SendResult:
    [result] = await provider(**overrides).send([msg])
    for target in msg.contact.webpush:
        assert target.endpoint not in result.detail
    assert CONTENT["body"] not in result.detail
    return result


async def test_a_push_decrypts_to_the_message_and_its_vapid_verifies(peer: WebPushPeer):
    sub = peer.subscribe()
    result = await send_one(message(sub))
    assert (result.outcome, result.reason, result.gone_endpoints) == ("sent", "sent", ())
    [push] = peer.pushes_to(sub)
    assert push.error == ""
    assert push.json() == CONTENT
    assert push.claims["aud"] == peer.origin
    assert push.claims["sub"] == SUBJECT


async def test_ttl_and_urgency_arrive_as_headers_with_the_settings_defaults(peer: WebPushPeer):
    sub = peer.subscribe()
    await send_one(message(sub), webpush_ttl_s=3600, webpush_urgency="low")
    [push] = peer.pushes_to(sub)
    assert (push.headers["ttl"], push.headers["urgency"]) == ("3600", "low")
    assert "topic" not in push.headers


async def test_a_message_may_override_ttl_and_urgency_and_set_a_topic(peer: WebPushPeer):
    sub = peer.subscribe()
    await send_one(message(sub, metadata={"ttl_s": "60", "urgency": "high", "topic": "cart-1"}))
    [push] = peer.pushes_to(sub)
    assert push.error == ""
    assert (push.headers["ttl"], push.headers["urgency"], push.headers["topic"]) == (
        "60",
        "high",
        "cart-1",
    )


@pytest.mark.parametrize("status", [410, 404])
async def test_an_only_subscription_that_is_gone_is_pruned_and_fails_for_good(
    peer: WebPushPeer, status: int
):
    sub = peer.subscribe(status=status)
    result = await send_one(message(sub))
    assert (result.outcome, result.reason) == ("permanent", reasons.SUBSCRIPTION_GONE)
    assert result.gone_endpoints == (sub.endpoint,)
    assert peer.pushes_to(sub)[0].error == ""


async def test_one_good_and_one_gone_subscription_is_sent_listing_the_gone_one(
    peer: WebPushPeer,
):
    good, gone = peer.subscribe(), peer.subscribe(status=410)
    result = await send_one(message(good, gone))
    assert result.outcome == "sent"
    assert result.gone_endpoints == (gone.endpoint,)
    assert peer.pushes_to(good)[0].json() == CONTENT


async def test_429_is_rate_limited_and_carries_the_retry_after(peer: WebPushPeer):
    sub = peer.subscribe(status=429, headers={"Retry-After": "7"})
    result = await send_one(message(sub))
    assert (result.outcome, result.reason, result.retry_after_s) == (
        "transient",
        reasons.RATE_LIMITED,
        7.0,
    )


async def test_a_server_error_is_transient(peer: WebPushPeer):
    sub = peer.subscribe(status=500)
    result = await send_one(message(sub))
    assert (result.outcome, result.reason) == ("transient", reasons.PROVIDER_UNAVAILABLE)
    assert result.gone_endpoints == ()


@pytest.mark.parametrize("status", [400, 403, 413])
async def test_a_refusal_is_permanent_and_the_subscription_is_kept(peer: WebPushPeer, status: int):
    sub = peer.subscribe(status=status)
    result = await send_one(message(sub))
    assert (result.outcome, result.reason) == ("permanent", reasons.PROVIDER_REJECTED)
    assert result.gone_endpoints == ()


async def test_a_push_service_that_does_not_answer_is_transient():
    sub = Subscription(f"http://127.0.0.1:{free_port()}/push/nobody-listens")
    result = await send_one(message(sub))
    assert (result.outcome, result.reason) == ("transient", reasons.PROVIDER_UNAVAILABLE)


async def test_a_loopback_endpoint_is_forbidden_unless_private_endpoints_are_allowed(
    peer: WebPushPeer,
):
    sub = peer.subscribe()
    refused = await send_one(message(sub), webpush_allow_private_endpoints=False)
    assert (refused.outcome, refused.reason) == ("permanent", reasons.ENDPOINT_FORBIDDEN)
    assert refused.gone_endpoints == ()
    assert peer.requests == 0  # refused before any request was made

    allowed = await send_one(message(sub), webpush_allow_private_endpoints=True)
    assert allowed.outcome == "sent"
    assert peer.pushes_to(sub)[0].error == ""


async def test_plain_http_is_forbidden_unless_allowed(peer: WebPushPeer):
    sub = peer.subscribe()
    refused = await send_one(message(sub), webpush_allow_http=False)
    assert (refused.outcome, refused.reason) == ("permanent", reasons.ENDPOINT_FORBIDDEN)
    assert peer.requests == 0


async def test_a_payload_too_large_is_refused_before_any_request(peer: WebPushPeer):
    sub = peer.subscribe()
    msg = message(sub)
    big = OutgoingMessage(**{**msg.__dict__, "content": {**CONTENT, "body": "x" * 4000}})
    [result] = await provider().send([big])
    assert (result.outcome, result.reason) == ("permanent", reasons.PROVIDER_REJECTED)
    assert peer.requests == 0


async def test_a_batch_answers_every_message_in_order(peer: WebPushPeer):
    subs = [peer.subscribe(status=s) for s in (201, 410, 500)]
    msgs = [
        OutgoingMessage(**{**message(sub).__dict__, "delivery_id": f"d-{i}"})
        for i, sub in enumerate(subs)
    ]
    results = await provider().send(msgs)
    assert [(r.delivery_id, r.outcome) for r in results] == [
        ("d-0", "sent"),
        ("d-1", "permanent"),
        ("d-2", "transient"),
    ]
    assert all(json.loads(p.payload) == CONTENT for p in peer.pushes)


async def test_the_peer_really_checks_what_it_is_sent(peer: WebPushPeer):
    """A push signed for another origin, or whose body does not decrypt, is
    refused: the passing tests above are not the peer waving everything through."""
    sub = peer.subscribe()
    good = encrypt(sub.target(), b"{}")
    wrong_aud = provider().authorization("https://push.example/x")
    right_aud = provider().authorization(sub.endpoint)
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm"}
    async with httpx.AsyncClient(trust_env=False) as client:
        for auth, body in ((wrong_aud, good), (right_aud, good[:-1] + b"\0")):
            response = await client.post(
                sub.endpoint, content=body, headers={**headers, "Authorization": auth}
            )
            assert response.status_code == 400
    assert [p.error.split(" ")[0] for p in peer.pushes_to(sub)] == ["aud", "aes128gcm"]
