"""Accepted -> sent, split into processing time and time deferred on purpose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels.worker import due_at
from shared import metrics
from shared.clock import to_timestamp

State = intent_pb2.DeliveryState
ACCEPTED = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)


def sample(name: str, channel: str, le: str | None = None) -> float:
    labels = {"channel": channel} if le is None else {"channel": channel, "le": le}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def processing(channel: str, le: str | None = None) -> float:
    suffix = "_count" if le is None else "_bucket"
    return sample("sendmesh_delivery_latency_seconds" + suffix, channel, le)


def deferred(channel: str, le: str | None = None) -> float:
    suffix = "_count" if le is None else "_bucket"
    return sample("sendmesh_delivery_deferred_seconds" + suffix, channel, le)


def decided(state: int, not_before: datetime | None = None) -> intent_pb2.Decision:
    dec = intent_pb2.Decision(stage="eligibility", state=state, reason="r")  # type: ignore[arg-type]
    if not_before is not None:
        dec.not_before.CopyFrom(to_timestamp(not_before))
    return dec


def test_an_inapp_send_of_20_ms_lands_in_a_bucket_under_50_ms_and_is_not_deferred():
    channel = "inapp"
    before = processing(channel, "0.025"), processing(channel, "0.01"), deferred(channel)
    metrics.observe_sent(channel, ACCEPTED, None, ACCEPTED + timedelta(milliseconds=20))
    assert processing(channel, "0.025") == before[0] + 1
    assert processing(channel, "0.01") == before[1]
    assert deferred(channel) == before[2]


def test_a_send_deferred_overnight_counts_its_wait_as_deferred_and_only_the_rest_as_processing():
    channel = "webpush"
    due = ACCEPTED + timedelta(hours=9)
    before = processing(channel, "1.0"), deferred(channel, "28800.0"), deferred(channel, "43200.0")
    metrics.observe_sent(channel, ACCEPTED, due, due + timedelta(milliseconds=300))
    assert processing(channel, "1.0") == before[0] + 1  # 0.3 s, not nine hours
    assert deferred(channel, "28800.0") == before[1]  # more than 8 h
    assert deferred(channel, "43200.0") == before[2] + 1  # up to 12 h


def test_a_retried_send_minutes_late_is_resolved_in_minutes_not_in_the_overflow_bucket():
    channel = "sms"
    before = processing(channel, "120.0"), processing(channel, "300.0")
    metrics.observe_sent(channel, ACCEPTED, None, ACCEPTED + timedelta(minutes=3))
    assert processing(channel, "120.0") == before[0]
    assert processing(channel, "300.0") == before[1] + 1


def test_a_due_time_not_reached_at_send_counts_no_deferral_beyond_the_send():
    channel = "email"
    before = deferred(channel, "60.0"), deferred(channel)
    sent = ACCEPTED + timedelta(seconds=30)
    metrics.observe_sent(channel, ACCEPTED, ACCEPTED + timedelta(hours=1), sent)
    assert deferred(channel) == before[1] + 1
    assert deferred(channel, "60.0") == before[0] + 1  # 30 s, not an hour


def test_the_due_time_is_the_latest_scheduled_not_before_of_the_deliverys_decisions():
    quiet_end, cap_slot = ACCEPTED + timedelta(hours=9), ACCEPTED + timedelta(hours=10)
    delivery = envelope_pb2.Delivery(
        decisions=[
            decided(State.DELIVERY_STATE_PENDING),
            decided(State.DELIVERY_STATE_SCHEDULED, quiet_end),
            decided(State.DELIVERY_STATE_PENDING),
            decided(State.DELIVERY_STATE_SCHEDULED, cap_slot),
            decided(State.DELIVERY_STATE_PENDING),
        ]
    )
    assert due_at(delivery) == cap_slot


def test_a_delivery_never_scheduled_has_no_due_time():
    delivery = envelope_pb2.Delivery(decisions=[decided(State.DELIVERY_STATE_PENDING)])
    assert due_at(delivery) is None


def test_a_batch_of_alike_sends_counts_each_delivery():
    channel = "email"
    due = ACCEPTED + timedelta(hours=1)
    before = processing(channel), deferred(channel)
    metrics.observe_sent(channel, ACCEPTED, due, due + timedelta(seconds=1), n=250)
    assert processing(channel) == before[0] + 250
    assert deferred(channel) == before[1] + 250
