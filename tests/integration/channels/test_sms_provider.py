"""The twilio SMS provider against a local peer that behaves like the real API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.channels.provider import Contact, OutgoingMessage, SendResult
from services.sms.providers.twilio import TwilioSmsProvider
from services.sms.settings import SmsSettings
from shared import reasons
from shared.errors import TransientError
from tests import servers
from tests.peers.sms import ACCOUNT_SID, AUTH_TOKEN, Scripted, SmsPeer, error_body

FROM = "+15005550006"
TO = "+14155552671"
SERVICE_SID = "MG" + "fedcba9876543210" * 2


def settings_for(api_base: str, **overrides: Any) -> SmsSettings:
    values: dict[str, Any] = {
        "provider": "twilio",
        "sms_api_base": api_base,
        "sms_account_sid": ACCOUNT_SID,
        "sms_auth_token": AUTH_TOKEN,
        "sms_from_number": FROM,
        "sms_timeout_s": 2.0,
    }
    return SmsSettings(**(values | overrides))


def message(
    delivery_id: str = "d1", phone: str = TO, text: str = "Your code is 1234"
) -> OutgoingMessage:
    return OutgoingMessage(
        tenant_id="acme",
        intent_id="i1",
        delivery_id=delivery_id,
        user_id="u1",
        channel="sms",
        category="security",
        kind="transactional",
        content={"text": text},
        contact=Contact(phone=phone),
    )


def assert_private(result: SendResult, sent: OutgoingMessage) -> None:
    """A detail never carries the number (in any form) or the text."""
    digits = sent.contact.phone.lstrip("+")
    assert digits[-7:] not in result.detail
    assert sent.content["text"] not in result.detail


@pytest.fixture
def peer() -> Iterator[SmsPeer]:
    with SmsPeer() as running:
        yield running


@pytest.fixture
async def provider(peer: SmsPeer) -> AsyncIterator[TwilioSmsProvider]:
    twilio = TwilioSmsProvider(settings_for(peer.url))
    yield twilio
    await twilio.aclose()


async def send_with(settings: SmsSettings, *messages: OutgoingMessage) -> list[SendResult]:
    twilio = TwilioSmsProvider(settings)
    try:
        return await twilio.send(messages)
    finally:
        await twilio.aclose()


async def test_a_message_is_sent_and_its_sid_is_the_provider_message_id(provider, peer):
    [result] = await provider.send([message(phone="(415) 555-2671")])

    [accepted] = peer.accepted
    assert (result.outcome, result.provider_message_id) == ("sent", accepted.sid)
    assert accepted.form == {"To": TO, "From": FROM, "Body": "Your code is 1234"}
    assert accepted.token == "d1"
    assert result.facts == {"encoding": "gsm7", "segments": "1"}


async def test_a_messaging_service_and_status_callback_replace_the_from_number(peer):
    settings = settings_for(
        peer.url,
        sms_from_number="",
        sms_messaging_service_sid=SERVICE_SID,
        sms_status_callback_url="https://hooks.example/sms/status",
    )
    [result] = await send_with(settings, message())

    assert result.outcome == "sent"
    assert peer.accepted[0].form == {
        "To": TO,
        "MessagingServiceSid": SERVICE_SID,
        "Body": "Your code is 1234",
        "StatusCallback": "https://hooks.example/sms/status",
    }


async def test_a_long_unicode_text_reports_ucs2_and_its_segments(provider, peer):
    [result] = await provider.send([message(text="Привет, мир! " * 6)])  # 78 UCS-2 units

    assert result.facts == {"encoding": "ucs2", "segments": "2"}


async def test_429_is_rate_limited_with_the_wait_the_retry_after_header_asked(provider, peer):
    peer.script(Scripted.rate_limited(retry_after="7"))
    [result] = await provider.send([message()])

    assert (peer.requests, peer.accepted) == (1, [])
    assert (result.outcome, result.reason, result.retry_after_s) == (
        "transient",
        reasons.RATE_LIMITED,
        7.0,
    )


async def test_a_burst_of_5xx_is_provider_unavailable_and_the_retry_is_sent(provider, peer):
    peer.script(Scripted.unavailable(500), Scripted.unavailable(503))
    first = await provider.send([message("d1"), message("d2")])
    assert (peer.requests, peer.accepted) == (2, [])  # the burst really happened

    retried = await provider.send([message("d1"), message("d2")])

    assert {(r.outcome, r.reason) for r in first} == {("transient", reasons.PROVIDER_UNAVAILABLE)}
    assert [r.outcome for r in retried] == ["sent", "sent"]


@pytest.mark.parametrize("code", [21211, 21614])
async def test_a_number_the_provider_refuses_is_invalid_contact(provider, peer, code):
    (peer.invalid if code == 21211 else peer.not_mobile).add(TO)
    sent = message()
    [result] = await provider.send([sent])

    assert (result.outcome, result.reason) == ("permanent", reasons.INVALID_CONTACT)
    assert result.detail == f"http 400 code {code}"
    assert_private(result, sent)


async def test_any_other_4xx_is_provider_rejected_without_the_providers_message(provider, peer):
    text = f"Permission to send an SMS has not been enabled for the region of {TO}"
    peer.script(Scripted(400, error_body(400, 21408, text)), Scripted(403, {}))
    sent = message()
    results = await provider.send([sent]) + await provider.send([sent])

    assert [(r.outcome, r.reason, r.detail) for r in results] == [
        ("permanent", reasons.PROVIDER_REJECTED, "http 400 code 21408"),
        ("permanent", reasons.PROVIDER_REJECTED, "http 403"),
    ]


async def test_a_recipient_who_texted_stop_is_opted_out(provider, peer):
    refusal = f"Attempt to send to unsubscribed recipient {TO}"
    peer.script(Scripted(400, error_body(400, 21610, refusal)))
    sent = message()
    [result] = await provider.send([sent])

    assert peer.requests == 1 and peer.accepted == []
    assert (result.outcome, result.reason) == ("permanent", reasons.OPTED_OUT)
    # The worker turns this into OPT_OUT feedback: consent and the list catch up.
    assert result.signal == "opt_out"
    assert_private(result, sent)


async def test_bad_credentials_fail_the_whole_call_and_say_so_once(peer):
    settings = settings_for(peer.url, sms_auth_token="wrong", sms_concurrency=1)
    with capture_logs() as logs, pytest.raises(TransientError) as raised:
        await send_with(settings, message("d1"), message("d2"), message("d3"))

    assert raised.value.reason == reasons.PROVIDER_ERROR
    # The first 401 stops the rest of the call: one request, nothing sent.
    assert (peer.requests, peer.accepted) == (1, [])
    assert [(e["log_level"], e["status"]) for e in logs] == [("error", 401)]


async def test_connection_refused_is_provider_unavailable_for_each_message():
    port = servers.free_port()
    assert not servers.port_open("127.0.0.1", port)  # nothing listens there
    results = await send_with(
        settings_for(f"http://127.0.0.1:{port}"), message("d1"), message("d2")
    )

    assert [(r.outcome, r.reason, r.detail) for r in results] == [
        ("transient", reasons.PROVIDER_UNAVAILABLE, "ConnectError")
    ] * 2


async def test_a_provider_slower_than_the_timeout_is_provider_unavailable(peer):
    peer.script(Scripted(201, {"sid": "SMlate"}, delay_s=1.0))
    [result] = await send_with(settings_for(peer.url, sms_timeout_s=0.2), message())

    assert peer.requests == 1  # the request arrived; the answer came too late
    assert (result.outcome, result.reason, result.detail) == (
        "transient",
        reasons.PROVIDER_UNAVAILABLE,
        "ReadTimeout",
    )


async def test_a_number_that_cannot_be_normalised_fails_without_an_http_call(provider, peer):
    sent = message(phone="555-2671")
    [result] = await provider.send([sent])

    assert peer.requests == 0
    assert (result.outcome, result.reason) == ("permanent", reasons.INVALID_CONTACT)
    assert_private(result, sent)


async def test_the_same_delivery_sent_twice_is_one_message_with_one_sid(provider, peer):
    first = await provider.send([message("d1")])
    again = await provider.send([message("d1")])

    assert peer.requests == 2
    assert len(peer.accepted) == 1
    assert first[0].provider_message_id == again[0].provider_message_id == peer.accepted[0].sid


async def test_a_batch_goes_out_concurrently_but_never_beyond_the_limit(peer):
    peer.latency_s = 0.05
    batch = [message(f"d{i}") for i in range(10)]
    results = await send_with(settings_for(peer.url, sms_concurrency=3), *batch)

    assert [r.delivery_id for r in results] == [m.delivery_id for m in batch]
    assert {r.outcome for r in results} == {"sent"}
    assert peer.max_in_flight == 3
