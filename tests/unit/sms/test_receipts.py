"""Which carrier receipts say the number is gone for good (pure helpers)."""

from __future__ import annotations

import pytest
from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intent.v1 import intent_pb2

from services.sms.inbound import parse_status
from services.sms.receipts import Sent, bounce_feedback, is_hard_bounce

SID = "SM" + "0123456789abcdef" * 2


def receipt(status: str, code: str = ""):
    form = {"MessageSid": SID, "MessageStatus": status}
    return parse_status(form | ({"ErrorCode": code} if code else {}))


@pytest.mark.parametrize(
    ("status", "code", "bounced"),
    [
        ("undelivered", "30005", True),  # unknown destination
        ("undelivered", "30006", True),  # landline or unreachable carrier
        ("failed", "30005", True),
        ("failed", "30006", True),
        ("undelivered", "30003", False),  # handset unreachable: may pass
        ("undelivered", "30008", False),  # unknown error
        ("undelivered", "", False),
        ("canceled", "30005", False),  # never sent: says nothing about the number
        ("delivered", "30005", False),
        ("sent", "", False),
    ],
)
def test_only_a_failed_receipt_with_30005_or_30006_is_a_hard_bounce(status, code, bounced):
    assert is_hard_bounce(receipt(status, code)) is bounced


def test_a_hard_bounce_names_the_number_the_carrier_error_and_the_message():
    sent = Sent("acme", "i1", "d1", "twilio")
    item = bounce_feedback(sent, receipt("undelivered", "30005"), "+4366412345678")
    assert (item.tenant_id, item.channel, item.kind, item.contact) == (
        "acme",
        intent_pb2.Channel.CHANNEL_SMS,
        feedback_pb2.FeedbackKind.FEEDBACK_KIND_HARD_BOUNCE,
        "+4366412345678",
    )
    assert (item.source, item.provider_ref, item.detail) == (
        "sms_receipt",
        SID,
        "carrier error 30005",
    )
    assert item.HasField("occurred_at")
