"""A batch's decisions: one protobuf per kind, counted once per kind at flush."""

from __future__ import annotations

from datetime import UTC, datetime

from sendmesh.intent.v1 import intent_pb2

from shared import metrics
from shared.envelopes import BatchDecisions

S = intent_pb2.DeliveryState


def counted(stage: str, outcome: str, reason: str) -> float:
    return metrics.DECISIONS.labels(stage, outcome, reason)._value.get()


def test_the_same_kind_of_decision_is_one_protobuf_and_counts_each_time_at_flush():
    decided = BatchDecisions("batch-test")
    first = decided.make(S.DELIVERY_STATE_PENDING, "allowed")
    assert all(decided.make(S.DELIVERY_STATE_PENDING, "allowed") is first for _ in range(4))
    other = decided.make(S.DELIVERY_STATE_SUPPRESSED, "opted_out", "email opted out")
    assert (first.stage, first.state, first.reason, first.HasField("at")) == (
        "batch-test",
        S.DELIVERY_STATE_PENDING,
        "allowed",
        True,
    )
    assert other is not first and other.detail == "email opted out"
    before = counted("batch-test", "pending", "allowed")
    decided.flush()
    assert counted("batch-test", "pending", "allowed") == before + 5
    assert counted("batch-test", "suppressed", "opted_out") >= 1
    decided.flush()  # counted once: a second flush adds nothing
    assert counted("batch-test", "pending", "allowed") == before + 5


def test_a_deferral_to_another_time_is_another_decision():
    decided = BatchDecisions("batch-test")
    at_nine = datetime(2026, 11, 24, 9, tzinfo=UTC)
    nine = decided.make(S.DELIVERY_STATE_SCHEDULED, "quiet_hours", "", at_nine)
    ten = decided.make(S.DELIVERY_STATE_SCHEDULED, "quiet_hours", "", at_nine.replace(hour=10))
    assert nine is not ten
    assert nine.not_before.ToDatetime(tzinfo=UTC) == at_nine
    assert decided.make(S.DELIVERY_STATE_SCHEDULED, "quiet_hours", "", at_nine) is nine
