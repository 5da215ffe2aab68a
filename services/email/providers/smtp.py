"""SMTP email provider: a relay reached over one connection per batch (aiosmtplib).

Each message gets its own answer from the server's replies: 4xx transient, 5xx
permanent. A session that cannot start, or drops before any message was
answered, is a TransientError; a drop later keeps the answers already given.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import aiosmtplib

from services.channels.provider import OutgoingMessage, SendResult, permanent, sent, transient
from services.email.message import (
    DkimKey,
    Unsendable,
    build_email,
    check_dkim_key,
    render,
)
from services.email.settings import EmailSettings
from shared import reasons
from shared.clock import utcnow
from shared.errors import TransientError
from shared.settings import SettingsError

# Replies to RCPT that say the mailbox does not exist or cannot be named so.
RECIPIENT_UNKNOWN = frozenset({550, 551, 553})
# RFC 3463 addressing statuses about the sender's own address.
SENDER_STATUSES = frozenset({"5.1.7", "5.1.8"})
# Only the RFC 3463 status is kept from a reply: its text may quote the address.
ENHANCED_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
# The session is gone: no further message can be answered on it.
SESSION_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


@dataclass(frozen=True)
class Wire:
    """One message ready for the session: envelope recipient and signed bytes."""

    delivery_id: str
    recipient: str = field(repr=False)
    message_id: str
    data: bytes = field(repr=False)


class SmtpEmailProvider:
    name = "smtp"

    def __init__(
        self, settings: EmailSettings, dkim_key: DkimKey | None, tls: ssl.SSLContext
    ) -> None:
        self.settings = settings
        self.dkim_key = dkim_key
        self.tls = tls

    @classmethod
    def from_settings(cls, settings: EmailSettings) -> SmtpEmailProvider:
        ca = settings.smtp_ca_file
        tls = ssl.create_default_context(cafile=str(ca) if ca else None)
        return cls(settings, load_dkim_key(settings), tls)

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        # Signing is CPU work (RSA in pure Python): off the event loop.
        items = await asyncio.to_thread(self._prepare, messages, utcnow())
        wires = [item for item in items if isinstance(item, Wire)]
        answers: dict[str, SendResult] = {}
        if wires:
            try:
                answers = await self._deliver(wires)
            except TransientError as err:
                if len(wires) == len(items):
                    raise
                # Keep the permanent answers already known; retry only the rest.
                answers = {
                    w.delivery_id: transient(w.delivery_id, err.reason, err.detail) for w in wires
                }
        return [answers[item.delivery_id] if isinstance(item, Wire) else item for item in items]

    def _prepare(
        self, messages: Sequence[OutgoingMessage], now: datetime
    ) -> list[Wire | SendResult]:
        items: list[Wire | SendResult] = []
        for message in messages:
            try:
                mail = build_email(message, self.settings, now)
            except Unsendable as err:
                items.append(permanent(message.delivery_id, err.reason, err.detail))
                continue
            recipient = mail["To"].addresses[0].addr_spec
            data = render(mail, self.dkim_key)
            items.append(Wire(message.delivery_id, recipient, str(mail["Message-ID"]), data))
        return items

    async def _deliver(self, wires: list[Wire]) -> dict[str, SendResult]:
        client = self._client()
        await self._connect(client)
        answers: dict[str, SendResult] = {}
        try:
            for wire in wires:
                answers[wire.delivery_id] = await self._send_one(client, wire)
        except SESSION_LOST as err:
            if not answers:
                raise TransientError(
                    f"smtp session lost: {describe(err)}", reason=reasons.PROVIDER_UNAVAILABLE
                ) from err
            # The one in flight may have arrived: a resend keeps its Message-ID.
            lost = f"smtp session lost before an answer: {type(err).__name__}"
            for wire in wires:
                answers.setdefault(
                    wire.delivery_id,
                    transient(wire.delivery_id, reasons.PROVIDER_UNAVAILABLE, lost),
                )
        finally:
            await close(client)
        return answers

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username or None,
            password=s.smtp_password.get_secret_value() if s.smtp_username else None,
            # Not socket.getfqdn(): a reverse lookup per batch can take seconds.
            local_hostname=s.resolved_message_id_domain(),
            timeout=s.smtp_timeout_s,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            tls_context=self.tls,
        )

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        """Connect, STARTTLS and log in as configured, or TransientError saying which failed."""
        where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as err:
            detail = f"smtp login to {where} refused ({err.code}): check SENDMESH_SMTP_USERNAME and SENDMESH_SMTP_PASSWORD"
            raise TransientError(detail, reason=reasons.PROVIDER_ERROR) from err
        except aiosmtplib.SMTPNotSupported as err:
            raise TransientError(
                f"smtp server at {where}: {err.message}", reason=reasons.PROVIDER_ERROR
            ) from err
        except (aiosmtplib.SMTPException, OSError) as err:
            detail = f"smtp connect to {where} failed: {describe(err)}"
            raise TransientError(detail, reason=reasons.PROVIDER_UNAVAILABLE) from err

    async def _send_one(self, client: aiosmtplib.SMTP, wire: Wire) -> SendResult:
        try:
            await client.sendmail(self.settings.from_address, [wire.recipient], wire.data)
        except aiosmtplib.SMTPRecipientsRefused as err:
            refused = err.recipients[0]
            return reply_result(wire.delivery_id, refused.code, refused.message, "rcpt")
        except aiosmtplib.SMTPSenderRefused as err:
            return reply_result(wire.delivery_id, err.code, err.message, "mail")
        except aiosmtplib.SMTPDataError as err:
            return reply_result(wire.delivery_id, err.code, err.message, "data")
        except aiosmtplib.SMTPResponseException as err:
            return reply_result(wire.delivery_id, err.code, err.message, "smtp")
        return sent(wire.delivery_id, wire.message_id)


def reply_result(delivery_id: str, code: int, text: str, stage: str) -> SendResult:
    """A server's refusal of one message as an outcome; the detail never quotes its text."""
    status = ENHANCED_STATUS.match(text)
    detail = f"smtp {code}{' ' + status.group(1) if status else ''} at {stage}"
    if 500 <= code < 600 and stage == "rcpt" and status and is_hard_bounce(status.group(1)):
        # The address itself is gone: the worker reports it, eligibility lists it.
        return replace(
            permanent(delivery_id, reasons.INVALID_CONTACT, detail), signal="hard_bounce"
        )
    if 500 <= code < 600 and stage == "rcpt" and code in RECIPIENT_UNKNOWN:
        return permanent(delivery_id, reasons.INVALID_CONTACT, detail)
    if 500 <= code < 600:
        return permanent(delivery_id, reasons.PROVIDER_REJECTED, detail)
    # 4xx, or a reply SMTP does not define: may pass on a later try.
    return transient(delivery_id, reasons.PROVIDER_UNAVAILABLE, detail)


def is_hard_bounce(status: str) -> bool:
    """RFC 3463 5.1.x: the destination address is bad (no such mailbox, no such
    domain, bad syntax, moved). 5.1.7/5.1.8 are about our sender, not them."""
    return status.startswith("5.1.") and status not in SENDER_STATUSES


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


async def close(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; the messages are already answered, so a failure here changes nothing."""
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


def load_dkim_key(settings: EmailSettings) -> DkimKey | None:
    path = settings.dkim_private_key_file
    if path is None:
        return None
    key = DkimKey(settings.dkim_selector, settings.dkim_domain, path.read_bytes())
    try:
        check_dkim_key(key)
    except ValueError as err:
        raise SettingsError(f"invalid settings:\n  SENDMESH_DKIM_PRIVATE_KEY_FILE: {err}") from None
    return key
