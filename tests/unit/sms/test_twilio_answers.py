"""How each answer of the Messages API becomes a result (pure helpers)."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from services.channels.settings import ChannelSettings
from services.sms.providers.twilio import (
    MAX_RETRY_AFTER_S,
    Refused,
    TwilioSmsProvider,
    classify,
    retry_after_s,
)
from shared import reasons
from shared.clock import utcnow


def answer(status: int, body: dict | None = None, headers: dict[str, str] | None = None):
    return classify("d1", status, httpx.Headers(headers or {}), body or {})


def test_a_2xx_is_sent_with_the_sid_and_a_401_is_a_refusal():
    assert answer(201, {"sid": "SMabc"}).provider_message_id == "SMabc"
    assert answer(201, {"sid": 7}).outcome == "sent"  # accepted: never send it again
    assert answer(401) == Refused("d1")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "reason"),
    [
        (500, {}, "transient", reasons.PROVIDER_UNAVAILABLE),
        (503, {}, "transient", reasons.PROVIDER_UNAVAILABLE),
        (408, {}, "transient", reasons.PROVIDER_UNAVAILABLE),
        (302, {}, "transient", reasons.PROVIDER_ERROR),
        (400, {"code": 21211}, "permanent", reasons.INVALID_CONTACT),
        (400, {"code": 21614}, "permanent", reasons.INVALID_CONTACT),
        (400, {"code": 21610}, "permanent", reasons.OPTED_OUT),
        (400, {"code": 21408}, "permanent", reasons.PROVIDER_REJECTED),
        (404, {}, "permanent", reasons.PROVIDER_REJECTED),
        (400, {"code": True}, "permanent", reasons.PROVIDER_REJECTED),
    ],
)
def test_each_status_and_error_code_maps_to_one_outcome(status, body, outcome, reason):
    result = answer(status, body)
    assert (result.outcome, result.reason) == (outcome, reason)


def test_only_a_recipient_who_texted_stop_at_the_carrier_signals_an_opt_out():
    stopped = answer(400, {"code": 21610})
    others = [answer(400, {"code": code}) for code in (21211, 21614, 21408)]
    assert stopped.signal == "opt_out"
    assert stopped.detail == "http 400 code 21610"
    assert [r.signal for r in others] == [None, None, None]
    assert answer(503).signal is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_s(header) == seconds


def test_retry_after_as_an_http_date_and_capped_at_an_hour():
    in_a_minute = format_datetime(utcnow() + timedelta(seconds=60), usegmt=True)
    assert 55 <= (retry_after_s(in_a_minute) or 0) <= 60
    assert retry_after_s("9999999") == MAX_RETRY_AFTER_S


def test_a_429_carries_the_wait_it_asked_for():
    result = answer(429, headers={"Retry-After": "12"})
    assert (result.reason, result.retry_after_s) == (reasons.RATE_LIMITED, 12.0)


def test_the_registry_factory_refuses_settings_of_another_channel():
    with pytest.raises(TypeError, match="needs SmsSettings"):
        TwilioSmsProvider.from_settings(ChannelSettings())
