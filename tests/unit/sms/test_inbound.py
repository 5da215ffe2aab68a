from __future__ import annotations

import pytest

from services.sms.inbound import (
    DeliveryReceipt,
    InboundMessage,
    MalformedWebhook,
    is_signed,
    keyword_of,
    parse_form,
    parse_inbound,
    parse_status,
    signature_of,
)

SID = "SM" + "0123456789abcdef" * 2

# Twilio's published request-validation example.
DOCS_TOKEN = "12345"
DOCS_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOCS_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]
DOCS_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        *[(w, "stop") for w in ("STOP", "stopall", "Unsubscribe", "cancel", "END", "quit")],
        *[(w, "start") for w in ("START", "yes", "Unstop")],
        *[(w, "help") for w in ("HELP", "info")],
        ("  Stop \n", "stop"),
    ],
)
def test_the_standard_keywords_are_recognised_whatever_their_case(text, keyword):
    assert keyword_of(text) == keyword


@pytest.mark.parametrize("text", ["", "stop it", "please STOP", "STOP.", "stopp", "hello"])
def test_only_a_message_that_is_exactly_a_keyword_counts(text):
    assert keyword_of(text) is None


def test_an_inbound_stop_gives_the_sender_and_the_keyword():
    form = dict(
        parse_form(f"From=%2B14155552671&To=%2B15005550006&Body=+Stop+&MessageSid={SID}".encode())
    )

    message = parse_inbound(form)

    assert message == InboundMessage(SID, "+14155552671", "stop")
    assert "14155552671" not in repr(message)


def test_an_inbound_message_without_a_sender_is_malformed():
    with pytest.raises(MalformedWebhook):
        parse_inbound({"Body": "STOP", "MessageSid": SID})


def test_a_body_that_is_not_utf8_is_malformed():
    with pytest.raises(MalformedWebhook):
        parse_form(b"Body=\xff\xfe")


@pytest.mark.parametrize(
    ("form", "receipt"),
    [
        ({"MessageStatus": "delivered"}, DeliveryReceipt(SID, "delivered", "delivered")),
        ({"MessageStatus": "Read"}, DeliveryReceipt(SID, "read", "delivered")),
        ({"MessageStatus": "sent"}, DeliveryReceipt(SID, "sent", "pending")),
        (
            {"MessageStatus": "undelivered", "ErrorCode": "30007"},
            DeliveryReceipt(SID, "undelivered", "failed", 30007),
        ),
        (
            {"MessageStatus": "failed", "ErrorCode": "30003"},
            DeliveryReceipt(SID, "failed", "failed", 30003),
        ),
    ],
)
def test_a_status_callback_becomes_a_delivery_receipt(form, receipt):
    assert parse_status({"MessageSid": SID, **form}) == receipt


@pytest.mark.parametrize(
    "form",
    [
        {"MessageStatus": "delivered"},
        {"MessageSid": SID},
        {"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": "oops"},
    ],
)
def test_a_status_callback_without_its_sid_status_or_a_numeric_code_is_malformed(form):
    with pytest.raises(MalformedWebhook):
        parse_status(form)


def test_the_signature_matches_twilios_published_example():
    assert signature_of(DOCS_URL, DOCS_PARAMS, DOCS_TOKEN) == DOCS_SIGNATURE
    assert is_signed(DOCS_URL, reversed(DOCS_PARAMS), DOCS_SIGNATURE, DOCS_TOKEN)


def test_a_tampered_parameter_url_or_token_fails_the_signature():
    tampered = [*DOCS_PARAMS[:2], ("Digits", "9999"), *DOCS_PARAMS[3:]]
    assert not is_signed(DOCS_URL, tampered, DOCS_SIGNATURE, DOCS_TOKEN)
    assert not is_signed(DOCS_URL + "&baz=3", DOCS_PARAMS, DOCS_SIGNATURE, DOCS_TOKEN)
    assert not is_signed(DOCS_URL, DOCS_PARAMS, DOCS_SIGNATURE, "54321")


def test_a_missing_signature_or_empty_token_never_validates():
    assert not is_signed(DOCS_URL, DOCS_PARAMS, "", DOCS_TOKEN)
    empty_key_signature = signature_of(DOCS_URL, DOCS_PARAMS, "")
    assert not is_signed(DOCS_URL, DOCS_PARAMS, empty_key_signature, "")


def test_a_url_signed_with_its_default_port_or_without_it_validates_either_way():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    signed_with_port = signature_of(with_port, DOCS_PARAMS, DOCS_TOKEN)
    assert is_signed(DOCS_URL, DOCS_PARAMS, signed_with_port, DOCS_TOKEN)
    assert is_signed(with_port, DOCS_PARAMS, DOCS_SIGNATURE, DOCS_TOKEN)


def test_a_non_ascii_signature_header_is_refused_not_an_error():
    assert not is_signed(DOCS_URL, DOCS_PARAMS, "signé", DOCS_TOKEN)
