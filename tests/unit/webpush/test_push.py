from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.webpush.push import (
    MAX_PAYLOAD,
    Answer,
    PushOptions,
    Rejected,
    audience,
    classify,
    combine,
    encode_payload,
    push_headers,
    push_options,
    retry_after_s,
)
from shared import reasons


def test_the_settings_ttl_and_urgency_apply_without_overrides():
    assert push_options({}, 86400, "normal") == PushOptions(86400, "normal", "")


def test_a_message_may_override_ttl_urgency_and_topic():
    options = push_options({"ttl_s": "0", "urgency": "very-low", "topic": "a_B-9"}, 60, "normal")
    assert options == PushOptions(0, "very-low", "a_B-9")
    assert push_headers(options) == {
        "TTL": "0",
        "Urgency": "very-low",
        "Topic": "a_B-9",
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }


@pytest.mark.parametrize(
    "metadata",
    [
        {"urgency": "urgent"},
        {"urgency": "High"},
        {"ttl_s": "-1"},
        {"ttl_s": "1.5"},
        {"ttl_s": "²"},
        {"ttl_s": "99999999"},
        {"topic": "has space"},
        {"topic": "x" * 33},
    ],
)
def test_an_invalid_override_is_refused(metadata: dict[str, str]):
    with pytest.raises(Rejected):
        push_options(metadata, 60, "normal")


def test_the_payload_is_the_json_a_service_worker_reads():
    payload = encode_payload({"title": "T", "body": "B", "url": "https://x.example/", "kind": "k"})
    assert json.loads(payload) == {
        "title": "T",
        "body": "B",
        "icon": "",
        "url": "https://x.example/",
    }


def test_a_payload_that_cannot_fit_in_a_push_is_refused_without_quoting_it():
    empty = len(encode_payload({}))
    assert len(encode_payload({"body": "x" * (MAX_PAYLOAD - empty)})) == MAX_PAYLOAD
    with pytest.raises(Rejected) as refused:
        encode_payload({"body": "x" * (MAX_PAYLOAD - empty + 1)})
    assert "xxx" not in str(refused.value)


def test_the_size_limit_counts_bytes_not_characters():
    with pytest.raises(Rejected):
        encode_payload({"body": "é" * (MAX_PAYLOAD // 2)})


@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (201, "accepted", ""),
        (202, "accepted", ""),
        (404, "gone", reasons.SUBSCRIPTION_GONE),
        (410, "gone", reasons.SUBSCRIPTION_GONE),
        (429, "transient", reasons.RATE_LIMITED),
        (500, "transient", reasons.PROVIDER_UNAVAILABLE),
        (503, "transient", reasons.PROVIDER_UNAVAILABLE),
        (400, "permanent", reasons.PROVIDER_REJECTED),
        (403, "permanent", reasons.PROVIDER_REJECTED),
        (413, "permanent", reasons.PROVIDER_REJECTED),
        (301, "permanent", reasons.PROVIDER_REJECTED),
    ],
)
def test_status_codes_map_to_answers(status: int, outcome: str, reason: str):
    answer = classify(status)
    assert (answer.outcome, answer.reason) == (outcome, reason)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_s("120") == 120.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (retry_after_s(later) or 0) <= 60
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None


GONE = Answer("gone", reasons.SUBSCRIPTION_GONE)
OK = Answer("accepted")
LIMITED = Answer("transient", reasons.RATE_LIMITED, "push service answered 429", 9.0)
FORBIDDEN = Answer("permanent", reasons.ENDPOINT_FORBIDDEN, "non-public")


def test_one_accepted_subscription_makes_the_delivery_sent_and_lists_the_gone():
    result = combine("d", [("e1", GONE), ("e2", OK), ("e3", LIMITED)])
    assert (result.outcome, result.gone_endpoints) == ("sent", ("e1",))


def test_all_gone_is_a_permanent_subscription_gone():
    result = combine("d", [("e1", GONE), ("e2", GONE)])
    assert (result.outcome, result.reason) == ("permanent", reasons.SUBSCRIPTION_GONE)
    assert result.gone_endpoints == ("e1", "e2")


def test_a_transient_failure_wins_over_a_permanent_one_so_the_delivery_is_retried():
    result = combine("d", [("e1", FORBIDDEN), ("e2", LIMITED), ("e3", GONE)])
    assert (result.outcome, result.reason, result.retry_after_s) == (
        "transient",
        reasons.RATE_LIMITED,
        9.0,
    )
    assert result.gone_endpoints == ("e3",)


def test_a_forbidden_endpoint_is_not_reported_gone():
    result = combine("d", [("e1", FORBIDDEN)])
    assert (result.outcome, result.reason, result.gone_endpoints) == (
        "permanent",
        reasons.ENDPOINT_FORBIDDEN,
        (),
    )


def test_the_audience_is_the_origin_of_the_endpoint():
    assert audience("https://fcm.googleapis.com/fcm/send/abc") == "https://fcm.googleapis.com"
    assert audience("http://127.0.0.1:8080/push/x") == "http://127.0.0.1:8080"
