from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intent.v1 import intent_pb2

from services.profile.contact_store import Statement
from services.profile.feedback import NumberConsent, consent_changes, statements_for
from shared.clock import to_timestamp

K = feedback_pb2.FeedbackKind
EMAIL, SMS = intent_pb2.Channel.CHANNEL_EMAIL, intent_pb2.Channel.CHANNEL_SMS
NOW = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)
PHONE = "+4366412345678"


def keyword(kind: int, tenant: str = "acme", **more: object) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(
        tenant_id=tenant,
        channel=SMS,
        kind=kind,  # type: ignore[arg-type]
        contact=PHONE,
        **more,  # type: ignore[arg-type]
    )


def test_stop_withdraws_and_start_grants_in_arrival_order_per_tenant():
    earlier = NOW - timedelta(minutes=5)
    changes = consent_changes(
        [
            keyword(
                K.FEEDBACK_KIND_OPT_OUT, source="sms_keyword", occurred_at=to_timestamp(earlier)
            ),
            keyword(K.FEEDBACK_KIND_OPT_IN, tenant="globex"),
            keyword(K.FEEDBACK_KIND_OPT_IN),
        ],
        NOW,
    )

    assert changes == {
        "acme": [
            NumberConsent(PHONE, False, "sms_keyword", earlier),
            NumberConsent(PHONE, True, "sms_keyword", NOW),
        ],
        "globex": [NumberConsent(PHONE, True, "sms_keyword", NOW)],
    }


def test_bounces_help_and_email_feedback_record_no_consent():
    changes = consent_changes(
        [
            keyword(K.FEEDBACK_KIND_HELP),
            keyword(K.FEEDBACK_KIND_HARD_BOUNCE),
            feedback_pb2.Feedback(
                tenant_id="acme", channel=EMAIL, kind=K.FEEDBACK_KIND_OPT_OUT, contact="a@b.example"
            ),
        ],
        NOW,
    )

    assert changes == {}


def test_every_owner_of_a_number_gets_the_statement_and_an_unknown_number_none():
    change = NumberConsent(PHONE, False, "sms_keyword", NOW)
    other = NumberConsent("+15005550006", False, "sms_keyword", NOW)

    statements = statements_for([change, other], {PHONE: ["u1", "u2"]})

    assert statements == [
        Statement("u1", SMS, False, "sms_keyword", NOW),
        Statement("u2", SMS, False, "sms_keyword", NOW),
    ]
