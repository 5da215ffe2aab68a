from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest

from services.channels.provider import Contact, OutgoingMessage
from services.email.message import DkimKey, Unsendable, build_email, render
from services.email.settings import EmailSettings
from shared import reasons
from tests.peers.smtp import dkim_keys

NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
SETTINGS = EmailSettings(
    provider="smtp",
    from_address="news@shop.example",
    from_name="Shop Ä News",
    unsubscribe_url="https://shop.example/unsubscribe?d={delivery_id}&u={user_id}",
    unsubscribe_mailto="unsubscribe@shop.example",
)


def message(
    kind: str = "transactional",
    to: str = "ann@example.com",
    delivery_id: str = "d-1",
    **content: Any,
) -> OutgoingMessage:
    return OutgoingMessage(
        tenant_id="acme",
        intent_id="i1",
        delivery_id=delivery_id,
        user_id="user 1/ä",
        channel="email",
        category="cart_reminder",
        kind=kind,
        content={"subject": "Your cart", "text": "You left something", "html": "<p>You left</p>"}
        | content,
        contact=Contact(email=to),
    )


def wire(mail: EmailMessage, key: DkimKey | None = None) -> tuple[bytes, EmailMessage]:
    """What the server would be sent, and that parsed back as a receiver would."""
    raw = render(mail, key)
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def test_text_and_html_go_as_alternatives_with_the_addresses_and_ids():
    _, got = wire(build_email(message(), SETTINGS, NOW))

    assert got.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), p.get_content().strip()) for p in got.iter_parts()]
    assert parts == [("text/plain", "You left something"), ("text/html", "<p>You left</p>")]
    assert got["To"] == "ann@example.com"
    assert got["From"] == "Shop Ä News <news@shop.example>"
    assert got["Message-ID"] == "<d-1@shop.example>"
    assert got["Date"].datetime == NOW


@pytest.mark.parametrize(
    ("text", "html", "content_type"),
    [("Hi", "", "text/plain"), ("", "<p>Hi</p>", "text/html"), ("", "", "text/plain")],
)
def test_a_missing_part_leaves_a_single_part_email(text: str, html: str, content_type: str):
    _, got = wire(build_email(message(text=text, html=html), SETTINGS, NOW))

    assert not got.is_multipart()
    assert got.get_content_type() == content_type


def test_marketing_carries_one_click_unsubscribe_with_the_delivery_in_it():
    _, got = wire(build_email(message(kind="marketing"), SETTINGS, NOW))

    assert got["List-Unsubscribe"] == (
        "<https://shop.example/unsubscribe?d=d-1&u=user%201%2F%C3%A4>, "
        "<mailto:unsubscribe@shop.example?subject=unsubscribe%20d-1>"
    )
    assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_transactional_email_has_no_unsubscribe_headers():
    _, got = wire(build_email(message(kind="transactional"), SETTINGS, NOW))

    assert "List-Unsubscribe" not in got
    assert "List-Unsubscribe-Post" not in got


def test_a_long_unsubscribe_url_is_never_turned_into_an_encoded_word():
    long_url = "https://shop.example/" + "u" * 300 + "?d={delivery_id}"
    settings = SETTINGS.model_copy(update={"unsubscribe_url": long_url})

    raw, got = wire(build_email(message(kind="marketing"), settings, NOW))

    [line] = [h for h in raw.split(b"\r\n") if h.startswith(b"List-Unsubscribe:")]
    assert line.startswith(b"List-Unsubscribe: <https://shop.example/uuu")
    assert got["List-Unsubscribe"].startswith("<https://shop.example/uuu")


def test_marketing_without_an_unsubscribe_url_is_never_sent():
    settings = EmailSettings(from_address="news@shop.example")

    with pytest.raises(Unsendable) as caught:
        build_email(message(kind="marketing"), settings, NOW)
    assert caught.value.reason == reasons.PROVIDER_REJECTED


@pytest.mark.parametrize(
    "subject",
    [
        "hi\r\nBcc: evil@example.com",
        "hi\nBcc: evil@example.com",
        "hi\u2028Bcc: evil@example.com",
        "hi\x0bBcc: evil@example.com",
    ],
)
def test_a_line_break_in_the_subject_stays_inside_the_subject(subject: str):
    raw, got = wire(build_email(message(subject=subject), SETTINGS, NOW))

    assert "Bcc" not in got
    assert got["Subject"] == "hi Bcc: evil@example.com"
    assert b"\nBcc:" not in raw


def test_a_non_ascii_subject_is_encoded_and_reads_back_the_same():
    raw, got = wire(build_email(message(subject="Grüße 🛒 " * 12), SETTINGS, NOW))

    assert got["Subject"] == ("Grüße 🛒 " * 12).strip()
    assert all(byte < 128 for byte in raw)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


@pytest.mark.parametrize(
    "address",
    [
        "",
        "no-at-sign",
        "ann@localhost",
        "ann smith@example.com",
        "ann@example.com\r\nBcc: evil@example.com",
        "ann\n@example.com",
        "Ann <ann@example.com>",
        "ann@-example.com",
        "änn@example.com",
        "ann@@example.com",
    ],
)
def test_an_address_that_is_not_deliverable_is_a_permanent_invalid_contact(address: str):
    with pytest.raises(Unsendable) as caught:
        build_email(message(to=address), SETTINGS, NOW)

    assert caught.value.reason == reasons.INVALID_CONTACT
    assert address.strip() == "" or address.strip() not in caught.value.detail


def test_an_international_domain_is_sent_as_punycode():
    _, got = wire(build_email(message(to="ann@bücher.example"), SETTINGS, NOW))

    assert got["To"] == "ann@xn--bcher-kva.example"


def test_a_delivery_id_that_cannot_be_a_message_id_is_refused():
    with pytest.raises(Unsendable) as caught:
        build_email(message(delivery_id="d-1>\r\nX: y"), SETTINGS, NOW)

    assert caught.value.reason == reasons.PROVIDER_ERROR


def test_the_message_id_domain_can_differ_from_the_sender_domain():
    settings = SETTINGS.model_copy(update={"message_id_domain": "mx.shop.example"})

    _, got = wire(build_email(message(), settings, NOW))

    assert got["Message-ID"] == "<d-1@mx.shop.example>"


def test_a_dkim_signed_email_verifies_and_covers_the_unsubscribe_headers():
    private, record = dkim_keys()
    key = DkimKey("s1", "shop.example", private)

    raw, got = wire(build_email(message(kind="marketing"), SETTINGS, NOW), key)

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        assert name == b"s1._domainkey.shop.example."
        return record

    assert dkim.verify(raw, dnsfunc=dnsfunc)
    signed = got["DKIM-Signature"].replace(" ", "").split("h=")[1].split(";")[0].split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(signed)
