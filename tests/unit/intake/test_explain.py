from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.intake import explain
from shared.clock import to_timestamp

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
EVENING = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def dec(stage, state, reason, not_before=None, detail=""):
    d = intent_pb2.Decision(stage=stage, state=state, reason=reason, detail=detail)
    if not_before is not None:
        d.not_before.CopyFrom(to_timestamp(not_before))
    return d


def intent(*channels, strategy=intent_pb2.STRATEGY_ALL, on_capped=0):
    return intent_pb2.SendIntent(
        category="promo",
        kind=intent_pb2.KIND_MARKETING,
        channels=list(channels),
        strategy=strategy,
        on_capped=on_capped,
    )


def checker(answers):
    """Eligibility's answers: channel -> decision, or a function of the instant."""

    async def check(when):
        return {ch: (a(when) if callable(a) else a) for ch, a in answers.items()}

    return check


def reserver(granted):
    """Frequency's answers: channel -> (granted, decision) or a function of the instant."""

    async def reserve(channel, when):
        answer = granted[channel]
        return answer(when) if callable(answer) else answer

    return reserve


ALLOWED = dec("eligibility", S.DELIVERY_STATE_PENDING, "allowed")
RESERVED = (True, dec("frequency", S.DELIVERY_STATE_PENDING, "reserved"))


async def test_push_is_sent_and_email_is_suppressed_with_its_reason():
    check = checker(
        {
            C.CHANNEL_WEBPUSH: ALLOWED,
            C.CHANNEL_EMAIL: dec("eligibility", S.DELIVERY_STATE_SUPPRESSED, "opted_out"),
        }
    )
    out = await explain.explain(
        intent(C.CHANNEL_WEBPUSH, C.CHANNEL_EMAIL),
        profile_pb2.Profile(user_id="u1"),
        AT,
        check,
        reserver({C.CHANNEL_WEBPUSH: RESERVED}),
    )
    push, email = out
    assert (push.outcome, push.reason) == (S.DELIVERY_STATE_SENT, "sent")
    assert [s.stage for s in push.steps] == ["profile", "eligibility", "frequency"]
    assert push.summary == "webpush would be sent at 2026-11-23T14:00:00Z"
    assert (email.outcome, email.reason) == (S.DELIVERY_STATE_SUPPRESSED, "opted_out")
    assert email.summary == "email suppressed: opted_out"
    assert not email.HasField("send_at")


async def test_quiet_hours_defer_then_the_delivery_is_checked_again_when_due():
    def quiet_until_evening(when):
        if when < EVENING:
            return dec("eligibility", S.DELIVERY_STATE_SCHEDULED, "quiet_hours", EVENING)
        return ALLOWED

    out = await explain.explain(
        intent(C.CHANNEL_WEBPUSH),
        profile_pb2.Profile(user_id="u1"),
        AT,
        checker({C.CHANNEL_WEBPUSH: quiet_until_evening}),
        reserver({C.CHANNEL_WEBPUSH: RESERVED}),
    )
    [push] = out
    assert push.outcome == S.DELIVERY_STATE_SENT
    assert push.send_at.ToDatetime(tzinfo=UTC) == EVENING
    assert [(s.stage, s.reason) for s in push.steps] == [
        ("profile", "planned"),
        ("eligibility", "quiet_hours"),
        ("eligibility", "allowed"),
        ("frequency", "reserved"),
    ]
    assert push.summary == "webpush would be sent at 2026-11-23T19:00:00Z (after waiting)"


async def test_a_capped_first_choice_falls_back_to_the_next_channel():
    capped = (False, dec("frequency", S.DELIVERY_STATE_CAPPED, "capped", detail="push 2/2 today"))
    out = await explain.explain(
        intent(C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP, strategy=intent_pb2.STRATEGY_FIRST_AVAILABLE),
        None,
        AT,
        checker({C.CHANNEL_WEBPUSH: ALLOWED, C.CHANNEL_INAPP: ALLOWED}),
        reserver({C.CHANNEL_WEBPUSH: capped, C.CHANNEL_INAPP: RESERVED}),
    )
    push, inapp = out
    assert push.steps[0].reason == "unknown_recipient"
    assert (push.outcome, push.reason) == (S.DELIVERY_STATE_SKIPPED, "fallback_not_needed")
    assert inapp.outcome == S.DELIVERY_STATE_SENT


async def test_a_capped_delivery_is_dropped_or_deferred_as_the_intent_says():
    tomorrow = AT + timedelta(hours=10)

    def slot(when):
        if when < tomorrow:
            return (False, dec("frequency", S.DELIVERY_STATE_CAPPED, "capped", tomorrow, "2/2"))
        return RESERVED

    args = (
        profile_pb2.Profile(user_id="u1"),
        AT,
        checker({C.CHANNEL_SMS: ALLOWED}),
        reserver({C.CHANNEL_SMS: slot}),
    )
    [dropped] = await explain.explain(intent(C.CHANNEL_SMS), *args)
    assert (dropped.outcome, dropped.summary) == (
        S.DELIVERY_STATE_CAPPED,
        "sms capped: capped (2/2)",
    )
    deferred_intent = intent(C.CHANNEL_SMS, on_capped=intent_pb2.CAP_ACTION_DEFER)
    [deferred] = await explain.explain(deferred_intent, *args)
    assert deferred.outcome == S.DELIVERY_STATE_SENT
    assert deferred.send_at.ToDatetime(tzinfo=UTC) == tomorrow


async def test_a_deferral_past_the_expiry_is_a_cap():
    late = AT + timedelta(days=1)
    capped = (False, dec("frequency", S.DELIVERY_STATE_CAPPED, "capped", late))
    i = intent(C.CHANNEL_SMS, on_capped=intent_pb2.CAP_ACTION_DEFER)
    i.timing.expires_at.CopyFrom(to_timestamp(AT + timedelta(hours=1)))
    [sms] = await explain.explain(
        i, None, AT, checker({C.CHANNEL_SMS: ALLOWED}), reserver({C.CHANNEL_SMS: capped})
    )
    assert sms.outcome == S.DELIVERY_STATE_CAPPED
