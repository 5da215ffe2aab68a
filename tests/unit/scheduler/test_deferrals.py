from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.scheduler.deferrals import HeldDelivery, cancelled_events, chunks, hold, without_users
from shared import envelopes
from shared.clock import to_timestamp
from shared.errors import PermanentError

S = intent_pb2.DeliveryState
C = intent_pb2.Channel
DUE = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
STAGES = {"eligibility", "frequency"}


def deferred(users: tuple[str, ...] = ("u1", "u2"), stage: str = "eligibility"):
    env = envelope_pb2.Envelope(tenant_id="acme", intent_id="i1")
    env.intent.audience.user_ids.extend([*users, "u9"])
    for user in users:
        d = env.deliveries.add(delivery_id=f"{user}-email", user_id=user, channel=C.CHANNEL_EMAIL)
        d.decisions.append(envelopes.decision("profile", S.DELIVERY_STATE_PENDING, "planned"))
        d.decisions.append(
            envelopes.decision("eligibility", S.DELIVERY_STATE_SCHEDULED, "quiet_hours")
        )
        env.profiles[user].user_id = user
    env.deferral.due_at.CopyFrom(to_timestamp(DUE))
    env.deferral.stage = stage
    env.deferral.reason = "quiet_hours"
    return env


def test_a_deferral_is_held_with_its_due_time_stage_reason_and_deliveries():
    held = hold(deferred(), STAGES)
    assert (held.tenant_id, held.intent_id) == ("acme", "i1")
    assert (held.due_at, held.stage, held.reason) == (DUE, "eligibility", "quiet_hours")
    assert held.deliveries == (
        HeldDelivery("u1-email", "u1", C.CHANNEL_EMAIL),
        HeldDelivery("u2-email", "u2", C.CHANNEL_EMAIL),
    )


def test_the_held_body_is_the_envelope_without_its_deferral():
    env = deferred()
    back = envelope_pb2.Envelope.FromString(hold(env, STAGES).body)
    assert not back.HasField("deferral")
    env.ClearField("deferral")
    assert back == env


def test_a_redelivered_envelope_has_the_same_digest_and_another_one_another():
    env = deferred()
    redelivered = envelope_pb2.Envelope.FromString(env.SerializeToString())
    assert hold(env, STAGES).digest == hold(redelivered, STAGES).digest
    env.deferral.reason = "capped"
    assert hold(env, STAGES).digest != hold(redelivered, STAGES).digest


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda e: e.ClearField("deferral"), "without a deferral"),
        (lambda e: e.deferral.ClearField("due_at"), "without due_at"),
        (lambda e: setattr(e.deferral, "stage", "deferred"), "unknown stage"),
        (lambda e: setattr(e.deferral, "stage", ""), "unknown stage"),
        (lambda e: e.ClearField("deliveries"), "without deliveries"),
    ],
)
def test_what_cannot_be_put_back_is_a_permanent_error(change, why):
    env = deferred()
    change(env)
    with pytest.raises(PermanentError, match=why):
        hold(env, STAGES)


def test_a_cancelled_delivery_is_reported_by_the_scheduler_with_its_trail():
    events = cancelled_events([hold(deferred(), STAGES).body])
    assert [e.delivery_id for e in events] == ["u1-email", "u2-email"]
    for e in events:
        assert (e.decision.stage, e.decision.state, e.decision.reason) == (
            "scheduler",
            S.DELIVERY_STATE_CANCELLED,
            "cancelled",
        )
        assert [(t.stage, t.reason) for t in e.trail] == [
            ("profile", "planned"),
            ("eligibility", "quiet_hours"),
        ]
        assert (e.tenant_id, e.intent_id, e.channel) == ("acme", "i1", C.CHANNEL_EMAIL)


def test_an_erased_user_leaves_no_trace_in_the_envelope():
    body = without_users(hold(deferred(), STAGES).body, {"u1"})
    assert body is not None
    env = envelope_pb2.Envelope.FromString(body)
    assert [d.user_id for d in env.deliveries] == ["u2"]
    assert sorted(env.profiles) == ["u2"]
    assert list(env.intent.audience.user_ids) == ["u2", "u9"]


def test_an_envelope_left_without_deliveries_is_gone():
    assert without_users(hold(deferred(), STAGES).body, {"u1", "u2"}) is None


def test_events_are_cut_into_batches_of_at_most_the_given_size():
    events = cancelled_events([hold(deferred(), STAGES).body] * 3)
    assert [len(b.events) for b in chunks(events, 4)] == [4, 2]
    assert chunks([], 4) == []
