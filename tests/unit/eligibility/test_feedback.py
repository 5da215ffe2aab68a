from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sendmesh.bus.v1 import feedback_pb2
from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2

from services.eligibility.feedback import plan
from services.eligibility.suppression import contact_hash
from shared.clock import to_timestamp

K = feedback_pb2.FeedbackKind
R = eligibility_pb2.SuppressionReason
EMAIL, SMS = intent_pb2.Channel.CHANNEL_EMAIL, intent_pb2.Channel.CHANNEL_SMS
KEY = b"unit-test-hash-key"
NOW = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
PHONE = "+4366412345678"


def item(
    kind: int, channel: int = SMS, contact: str = PHONE, tenant: str = "acme", **more: object
) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(
        tenant_id=tenant,
        channel=channel,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        contact=contact,
        **more,  # type: ignore[arg-type]
    )


def listed(channel: int, contact: str) -> tuple[int, str]:
    return (channel, contact_hash(KEY, channel, contact))  # type: ignore[arg-type]


def test_bounces_complaints_and_stops_are_listed_with_their_reasons():
    changes = plan(
        [
            item(K.FEEDBACK_KIND_HARD_BOUNCE, EMAIL, "Gone@Example.com", source="smtp"),
            item(K.FEEDBACK_KIND_COMPLAINT, EMAIL, "angry@example.com"),
            item(K.FEEDBACK_KIND_OPT_OUT),
        ],
        KEY,
        NOW,
    )

    added = changes.add["acme"]
    assert {k: e.reason for k, e in added.items()} == {
        listed(EMAIL, "gone@example.com"): R.SUPPRESSION_REASON_HARD_BOUNCE,
        listed(EMAIL, "angry@example.com"): R.SUPPRESSION_REASON_COMPLAINT,
        listed(SMS, PHONE): R.SUPPRESSION_REASON_SMS_STOP,
    }
    assert not any(changes.lift.values())


def test_the_last_stop_or_start_of_a_number_in_a_batch_wins():
    stop, start = item(K.FEEDBACK_KIND_OPT_OUT), item(K.FEEDBACK_KIND_OPT_IN)

    ends_started = plan([stop, start], KEY, NOW)
    ends_stopped = plan([stop, start, stop], KEY, NOW)

    assert (dict(ends_started.add["acme"]), ends_started.lift["acme"]) == ({}, {listed(SMS, PHONE)})
    assert list(ends_stopped.add["acme"]) == [listed(SMS, PHONE)]
    assert ends_stopped.lift["acme"] == set()


def test_a_start_never_takes_a_hard_bounce_off_the_list():
    changes = plan([item(K.FEEDBACK_KIND_HARD_BOUNCE), item(K.FEEDBACK_KIND_OPT_IN)], KEY, NOW)

    [entry] = changes.add["acme"].values()
    assert entry.reason == R.SUPPRESSION_REASON_HARD_BOUNCE
    # The lift removes SMS_STOP entries only (the store filters by that reason).
    assert changes.lift["acme"] == {listed(SMS, PHONE)}


def test_help_receipts_and_email_opt_outs_change_nothing_here():
    changes = plan(
        [
            item(K.FEEDBACK_KIND_HELP),
            item(K.FEEDBACK_KIND_RECEIPT),
            item(K.FEEDBACK_KIND_OPT_OUT, EMAIL, "ann@example.com"),
            item(K.FEEDBACK_KIND_OPT_IN, EMAIL, "ann@example.com"),
        ],
        KEY,
        NOW,
    )

    assert not any(changes.add.values()) and not any(changes.lift.values())
    assert changes.unusable == 0


def test_a_contact_that_is_no_address_of_its_channel_is_counted_and_left_alone():
    changes = plan(
        [
            item(K.FEEDBACK_KIND_OPT_OUT, contact="0664 123"),
            item(K.FEEDBACK_KIND_HARD_BOUNCE, EMAIL, "not an address"),
            item(K.FEEDBACK_KIND_HARD_BOUNCE, intent_pb2.Channel.CHANNEL_WEBPUSH, "x"),
        ],
        KEY,
        NOW,
    )

    assert changes.unusable == 3
    assert not any(changes.add.values())


def test_tenants_are_kept_apart_and_entries_carry_when_and_where_it_came_from():
    at = NOW - timedelta(hours=1)
    changes = plan(
        [
            item(K.FEEDBACK_KIND_OPT_OUT, tenant="acme", source="sms_keyword", detail="stop"),
            item(K.FEEDBACK_KIND_OPT_OUT, tenant="globex", occurred_at=to_timestamp(at)),
            item(K.FEEDBACK_KIND_OPT_OUT, tenant="initech", occurred_at=to_timestamp(NOW)),
        ],
        KEY,
        NOW - timedelta(minutes=1),
    )

    [acme] = changes.add["acme"].values()
    [globex] = changes.add["globex"].values()
    [initech] = changes.add["initech"].values()
    assert (acme.detail, acme.at) == ("sms_keyword: stop", NOW - timedelta(minutes=1))
    assert globex.at == at
    # A time ahead of ours is not kept: the list is never dated in the future.
    assert initech.at == NOW - timedelta(minutes=1)
