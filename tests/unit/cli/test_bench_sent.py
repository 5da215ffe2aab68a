from __future__ import annotations

from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bench.sent import SentWatcher

S = intent_pb2.DeliveryState


def event(intent: str, delivery: str, state: int, at: float) -> envelope_pb2.DeliveryEvent:
    decision = intent_pb2.Decision(state=state)  # type: ignore[arg-type]
    decision.at.seconds, decision.at.nanos = int(at), round(at % 1 * 1e9)
    return envelope_pb2.DeliveryEvent(intent_id=intent, delivery_id=delivery, decision=decision)


def watcher_after(*events: envelope_pb2.DeliveryEvent) -> SentWatcher:
    watcher = SentWatcher("amqp://unused", "bench")
    watcher.observe(envelope_pb2.EventBatch(events=events))
    return watcher


def test_an_intent_ends_with_its_first_final_decision_and_pending_is_not_one():
    watcher = watcher_after(
        event("i1", "d1", S.DELIVERY_STATE_PENDING, 10.0),
        event("i1", "d1", S.DELIVERY_STATE_CAPPED, 11.0),
        event("i1", "d1", S.DELIVERY_STATE_SENT, 12.0),
        event("i2", "d2", S.DELIVERY_STATE_SCHEDULED, 10.5),
    )
    assert watcher.ended == {"i1": (S.DELIVERY_STATE_CAPPED, 11.0)}
    assert watcher.count_ended(["i1", "i2"]) == 1
    assert watcher.sent_at == {"i1": 12.0}


def test_a_fan_out_counts_each_delivery_once_and_spans_its_first_to_last_send():
    watcher = watcher_after(
        event("fan", "d2", S.DELIVERY_STATE_SENT, 20.25),
        event("fan", "d1", S.DELIVERY_STATE_SENT, 20.0),
        event("fan", "d3", S.DELIVERY_STATE_SENT, 21.5),
        # Reported again after a redelivery: still one delivery.
        event("fan", "d1", S.DELIVERY_STATE_SENT, 22.0),
        event("fan", "d4", S.DELIVERY_STATE_SUPPRESSED, 23.0),
    )
    sends = watcher.sends["fan"]
    assert watcher.delivered("fan") == 3
    assert (sends.first_sent_at, sends.last_sent_at) == (20.0, 21.5)
    assert watcher.delivered("other") == 0
