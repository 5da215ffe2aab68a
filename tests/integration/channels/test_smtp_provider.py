"""The SMTP provider against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
import pytest

from services.channels.provider import Contact, OutgoingMessage
from services.email.providers.smtp import SmtpEmailProvider
from services.email.settings import EmailSettings
from shared import reasons
from shared.errors import TransientError
from tests.peers.smtp import HOST, SmtpPeer, TlsFiles, dkim_keys, self_signed
from tests.servers import free_port

BASE: dict[str, Any] = {
    "provider": "smtp",
    "smtp_host": HOST,
    "smtp_timeout_s": 5.0,
    "from_address": "news@shop.example",
    "from_name": "Shop",
    "unsubscribe_url": "https://shop.example/unsubscribe/{delivery_id}",
    "unsubscribe_mailto": "unsubscribe@shop.example",
}


def provider(port: int, **values: Any) -> SmtpEmailProvider:
    return SmtpEmailProvider.from_settings(EmailSettings(**(BASE | {"smtp_port": port} | values)))


def message(
    delivery_id: str, to: str = "ann@example.com", kind: str = "transactional", subject: str = "Hi"
) -> OutgoingMessage:
    return OutgoingMessage(
        tenant_id="acme",
        intent_id="i1",
        delivery_id=delivery_id,
        user_id="u1",
        channel="email",
        category="cart_reminder",
        kind=kind,
        content={"subject": subject, "text": "Plain words", "html": "<p>Rich words</p>"},
        contact=Contact(email=to),
    )


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return self_signed(tmp_path)


async def test_an_email_arrives_with_both_parts_and_its_message_id():
    with SmtpPeer() as peer:
        [result] = await provider(peer.port).send([message("d-1")])

    got, envelope = peer.only(), peer.received[0]
    assert (result.outcome, result.provider_message_id) == ("sent", "<d-1@shop.example>")
    assert (envelope.mail_from, envelope.rcpt_tos) == ("news@shop.example", ["ann@example.com"])
    assert (got["From"], got["To"]) == ("Shop <news@shop.example>", "ann@example.com")
    assert got["Message-ID"] == "<d-1@shop.example>" and got["Date"] is not None
    text, html = (part.get_content().strip() for part in got.iter_parts())
    assert (text, html) == ("Plain words", "<p>Rich words</p>")


async def test_one_connection_serves_a_batch_and_only_marketing_gets_unsubscribe():
    batch = [message("d-1", kind="marketing"), message("d-2", to="bob@example.com")]
    with SmtpPeer() as peer:
        results = await provider(peer.port).send(batch)

    assert [r.outcome for r in results] == ["sent", "sent"]
    assert peer.connections == 1
    marketing, transactional = (r.parsed() for r in peer.received)
    assert marketing["List-Unsubscribe"] == (
        "<https://shop.example/unsubscribe/d-1>, "
        "<mailto:unsubscribe@shop.example?subject=unsubscribe%20d-1>"
    )
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in transactional
    assert "List-Unsubscribe-Post" not in transactional


async def test_a_subject_with_a_line_break_cannot_add_a_bcc():
    with SmtpPeer() as peer:
        [result] = await provider(peer.port).send(
            [message("d-1", subject="hi\r\nBcc: evil@example.com")]
        )

    got = peer.only()
    assert result.outcome == "sent"
    assert peer.received[0].rcpt_tos == ["ann@example.com"]
    assert "Bcc" not in got
    assert got["Subject"] == "hi Bcc: evil@example.com"


async def test_a_malformed_address_fails_for_good_without_contacting_the_server():
    with SmtpPeer() as peer:
        [result] = await provider(peer.port).send(
            [message("d-1", to="ann@example.com\r\nRCPT TO:<x@y.example>")]
        )

    assert (result.outcome, result.reason) == ("permanent", reasons.INVALID_CONTACT)
    assert "ann@example.com" not in result.detail
    assert peer.connections == 0


async def test_each_recipient_gets_the_answer_its_rcpt_got_in_one_batch():
    replies = {
        "busy@example.com": "451 4.3.0 <busy@example.com>: try later",
        "gone@example.com": "550 5.1.1 <gone@example.com>: no such user",
    }
    batch = [message("d-1", "busy@example.com"), message("d-2", "gone@example.com"), message("d-3")]
    with SmtpPeer(replies=replies) as peer:
        busy, gone, fine = await provider(peer.port).send(batch)

    assert (busy.outcome, busy.reason, busy.detail) == (
        "transient",
        reasons.PROVIDER_UNAVAILABLE,
        "smtp 451 4.3.0 at rcpt",
    )
    assert (gone.outcome, gone.reason, gone.detail) == (
        "permanent",
        reasons.INVALID_CONTACT,
        "smtp 550 5.1.1 at rcpt",
    )
    assert (fine.outcome, fine.provider_message_id) == ("sent", "<d-3@shop.example>")
    assert [r.rcpt_tos for r in peer.received] == [["ann@example.com"]]
    assert peer.connections == 1


def relay_client(
    port: int, tls: TlsFiles, password: str, implicit: bool = False
) -> SmtpEmailProvider:
    """A client that trusts the peer's certificate and logs in as `relay`."""
    mode = {"smtp_tls": True} if implicit else {"smtp_starttls": True}
    login = {"smtp_username": "relay", "smtp_password": password}
    return provider(port, smtp_ca_file=tls.cert, **mode, **login)


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
async def test_tls_with_a_private_ca_and_a_login_delivers(tls: TlsFiles, implicit: bool):
    with SmtpPeer(tls=tls, implicit_tls=implicit, users={"relay": "s3cret"}) as peer:
        [result] = await relay_client(peer.port, tls, "s3cret", implicit).send([message("d-1")])

    assert (result.outcome, peer.logins) == ("sent", 1)
    assert peer.only()["Message-ID"] == "<d-1@shop.example>"


async def test_a_wrong_password_is_a_transient_failure_that_names_the_settings(tls: TlsFiles):
    peer = SmtpPeer(tls=tls, users={"relay": "s3cret"})
    with peer, pytest.raises(TransientError) as caught:
        await relay_client(peer.port, tls, "wrong").send([message("d-1")])

    assert peer.failed_logins >= 1  # aiosmtplib tries each mechanism offered
    assert caught.value.reason == reasons.PROVIDER_ERROR
    assert "login" in caught.value.detail and "SENDMESH_SMTP_PASSWORD" in caught.value.detail
    assert "wrong" not in caught.value.detail
    assert peer.received == []


async def test_a_certificate_the_client_does_not_trust_stops_the_session(tls: TlsFiles):
    with SmtpPeer(tls=tls) as peer, pytest.raises(TransientError) as caught:
        await provider(peer.port, smtp_starttls=True).send([message("d-1")])

    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.detail
    assert peer.received == []


async def test_a_server_that_is_down_fails_the_whole_call_transiently():
    with pytest.raises(TransientError) as caught:
        await provider(free_port()).send([message("d-1"), message("d-2")])

    assert caught.value.reason == reasons.PROVIDER_UNAVAILABLE


async def test_a_server_that_is_down_leaves_a_bad_address_failed_for_good():
    bad, good = await provider(free_port()).send([message("d-1", to="ann"), message("d-2")])

    assert (bad.outcome, bad.reason) == ("permanent", reasons.INVALID_CONTACT)
    assert (good.outcome, good.reason) == ("transient", reasons.PROVIDER_UNAVAILABLE)


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never greets."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, HOST, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
        await writer.wait_closed()


async def test_a_server_that_never_answers_times_out_transiently(silent_server: int):
    with pytest.raises(TransientError) as caught:
        await provider(silent_server, smtp_timeout_s=0.3).send([message("d-1")])

    assert caught.value.reason == reasons.PROVIDER_UNAVAILABLE


async def test_a_drop_mid_session_keeps_what_was_accepted_and_retries_the_rest():
    batch = [message("d-1"), message("d-2"), message("d-3")]
    with SmtpPeer(drop_after=1) as peer:
        first, in_flight, never_tried = await provider(peer.port).send(batch)

    assert peer.dropped == 1
    assert [r.parsed()["Message-ID"] for r in peer.received] == ["<d-1@shop.example>"]
    assert first.outcome == "sent"
    assert (in_flight.outcome, in_flight.reason) == ("transient", reasons.PROVIDER_UNAVAILABLE)
    assert (never_tried.outcome, never_tried.reason) == ("transient", reasons.PROVIDER_UNAVAILABLE)


async def test_a_drop_before_any_answer_fails_the_whole_call_transiently():
    with SmtpPeer(drop_after=0) as peer, pytest.raises(TransientError):
        await provider(peer.port).send([message("d-1"), message("d-2")])

    assert peer.dropped == 1
    assert peer.received == []


async def test_a_dkim_signed_email_verifies_as_received(tmp_path: Path):
    private, record = dkim_keys()
    (tmp_path / "dkim.pem").write_bytes(private)
    dkim_settings = {
        "dkim_selector": "s1",
        "dkim_domain": "shop.example",
        "dkim_private_key_file": tmp_path / "dkim.pem",
    }

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        return record if name == b"s1._domainkey.shop.example." else b""

    with SmtpPeer() as peer:
        [result] = await provider(peer.port, **dkim_settings).send(
            [message("d-1", kind="marketing")]
        )

    assert result.outcome == "sent"
    assert "DKIM-Signature" in peer.only()
    assert dkim.verify(peer.received[0].data, dnsfunc=dnsfunc)
