from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sendmesh.bus.v1 import feedback_pb2

from services.email.providers.smtp import is_hard_bounce, reply_result
from services.email.webhook import Invalid, WrongTenant, parse_reports
from shared import reasons

K = feedback_pb2.FeedbackKind
NOW = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "bounce"),
    [("5.1.1", True), ("5.1.2", True), ("5.1.10", True), ("5.1.7", False), ("5.7.1", False)],
)
def test_only_bad_destination_addresses_are_hard_bounces(status, bounce):
    assert is_hard_bounce(status) is bounce


def test_a_550_5_1_1_at_rcpt_is_an_invalid_contact_that_signals_a_hard_bounce():
    gone = reply_result("d1", 550, "5.1.1 <gone@example.com>: no such user", "rcpt")
    policy = reply_result("d2", 550, "5.7.1 rejected by policy", "rcpt")
    no_status = reply_result("d3", 550, "no such user", "rcpt")

    assert (gone.outcome, gone.reason, gone.signal) == (
        "permanent",
        reasons.INVALID_CONTACT,
        "hard_bounce",
    )
    assert gone.detail == "smtp 550 5.1.1 at rcpt"
    assert (policy.reason, policy.signal) == (reasons.INVALID_CONTACT, None)
    # Without an RFC 3463 status the reply says too little to list an address for good.
    assert (no_status.reason, no_status.signal) == (reasons.INVALID_CONTACT, None)


def test_a_report_or_a_list_of_them_becomes_feedback_for_the_keys_tenant():
    [bounce] = parse_reports({"kind": "bounce", "address": " ann@example.com "}, "acme", NOW)
    listed = parse_reports(
        [
            {"kind": "complaint", "address": "bob@example.com", "tenant": "acme"},
            {
                "kind": "bounce",
                "address": "cy@example.com",
                "occurred_at": "2030-01-15T08:00:00+01:00",
            },
        ],
        "acme",
        NOW,
    )

    assert (bounce.tenant_id, bounce.kind, bounce.contact) == (
        "acme",
        K.FEEDBACK_KIND_HARD_BOUNCE,
        "ann@example.com",
    )
    assert (bounce.source, bounce.occurred_at.ToDatetime(tzinfo=UTC)) == ("email_webhook", NOW)
    assert [i.kind for i in listed] == [K.FEEDBACK_KIND_COMPLAINT, K.FEEDBACK_KIND_HARD_BOUNCE]
    assert listed[1].occurred_at.ToDatetime(tzinfo=UTC) == datetime(2030, 1, 15, 7, tzinfo=UTC)


def test_every_bad_field_is_named_and_no_message_repeats_the_address():
    with pytest.raises(Invalid) as raised:
        parse_reports(
            [
                {"kind": "soft", "address": "nobody-at-example"},
                {
                    "kind": "bounce",
                    "address": "ann@example.com",
                    "occurred_at": "yesterday",
                    "x": 1,
                },
                "a string",
            ],
            "acme",
            NOW,
        )

    assert raised.value.problems == {
        "[0].kind": "bounce or complaint",
        "[0].address": "not an email address",
        "[1].occurred_at": "an RFC 3339 time with its offset",
        "[1].x": "unknown field",
        "[2]": "a JSON object",
    }
    assert "nobody-at-example" not in str(raised.value)
    with pytest.raises(Invalid):
        parse_reports([], "acme", NOW)


def test_a_report_naming_another_tenant_is_refused_whole():
    with pytest.raises(WrongTenant):
        parse_reports(
            {"kind": "bounce", "address": "a@example.com", "tenant": "globex"}, "acme", NOW
        )
