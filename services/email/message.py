"""Pure building of the email for one delivery: headers, parts, DKIM. No I/O.

Every header value that comes from a message (subject, recipient) is either
validated or flattened to one line here, so nothing a template or a profile
holds can start a header of its own.
"""

from __future__ import annotations

import email.policy
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import dkim  # type: ignore[import-untyped]

from services.channels.dev import SAFE_ID
from services.channels.provider import OutgoingMessage
from shared import reasons

if TYPE_CHECKING:
    from services.email.settings import EmailSettings

MARKETING = "marketing"
UNSUBSCRIBE_FIELDS = frozenset({"delivery_id", "tenant_id", "user_id", "category"})
# Folding is ours for List-Unsubscribe (see unsubscribe_value); everything else
# is folded by the library at 78 columns, non-ASCII as RFC 2047 words.
WIRE_POLICY = email.policy.SMTP.clone(refold_source="none")
# RFC 8058: the signature must cover both unsubscribe headers.
SIGNED_HEADERS = (
    "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "List-Unsubscribe", "List-Unsubscribe-Post",
)  # fmt: skip

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"({_LABEL}\.)+{_LABEL}")
_URI = re.compile(r"[\x21-\x7e]{1,900}")  # printable ASCII, no space: one header line


class Unsendable(ValueError):
    """This message can never be sent as it is: a permanent failure."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_key_pem: bytes = field(repr=False)


def is_domain(value: str) -> bool:
    return len(value) <= 253 and _DOMAIN.fullmatch(value) is not None


def is_address(value: str) -> bool:
    """A plain ASCII dot-atom address, as an SMTP command line can carry it."""
    local, at, domain = value.rpartition("@")
    if not at or len(value) > 254 or len(local) > 64:
        return False
    return _LOCAL_PART.fullmatch(local) is not None and is_domain(domain)


def is_header_safe(value: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)


def one_line(value: str) -> str:
    """Any line break or control character becomes a space: text stays text."""
    text = "".join(c if is_header_safe(c) else " " for c in value)
    return " ".join(text.split())


def recipient_address(raw: str) -> str | None:
    """The address as the server is given it (IDN domain as punycode), or None."""
    local, at, domain = raw.strip().rpartition("@")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    address = f"{local}{at}{ascii_domain}"
    return address if is_address(address) else None


def message_id(delivery_id: str, domain: str) -> str:
    """Stable per delivery, so a resend after a lost reply is recognisably the same mail."""
    return f"<{delivery_id}@{domain}>"


def unsubscribe_value(message: OutgoingMessage, settings: EmailSettings) -> str:
    """List-Unsubscribe: the one-click URL, then the mailto, one per folded line."""
    if not settings.unsubscribe_url:
        raise Unsendable(reasons.PROVIDER_REJECTED, "marketing email needs an unsubscribe url")
    values = {name: quote(str(getattr(message, name)), safe="") for name in UNSUBSCRIBE_FIELDS}
    uris = [settings.unsubscribe_url.format_map(values)]
    if settings.unsubscribe_mailto:
        subject = quote(f"unsubscribe {message.delivery_id}", safe="")
        uris.append(f"mailto:{settings.unsubscribe_mailto}?subject={subject}")
    if not all(_URI.fullmatch(u) for u in uris):
        raise Unsendable(reasons.PROVIDER_ERROR, "unsubscribe url does not fit a header")
    return ",\n ".join(f"<{u}>" for u in uris)


def build_email(message: OutgoingMessage, settings: EmailSettings, now: datetime) -> EmailMessage:
    """The email for one delivery, or Unsendable for a bad address or delivery id."""
    to = recipient_address(message.contact.email)
    if to is None:
        raise Unsendable(reasons.INVALID_CONTACT, "recipient is not a deliverable address")
    if not SAFE_ID.fullmatch(message.delivery_id):
        raise Unsendable(reasons.PROVIDER_ERROR, "bad delivery id")
    mail = EmailMessage()
    mail["From"] = Address(
        display_name=one_line(settings.from_name), addr_spec=settings.from_address
    )
    mail["To"] = Address(addr_spec=to)
    mail["Subject"] = one_line(str(message.content.get("subject") or ""))
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(message.delivery_id, settings.resolved_message_id_domain())
    if message.kind == MARKETING:
        mail.set_raw("List-Unsubscribe", unsubscribe_value(message, settings))
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    set_body(mail, str(message.content.get("text") or ""), str(message.content.get("html") or ""))
    return mail


def set_body(mail: EmailMessage, text: str, html: str) -> None:
    """Text and HTML as alternatives; quoted-printable keeps every line 7-bit and short,
    so any relay passes the bytes on unchanged and a DKIM body hash survives."""
    if text or not html:
        mail.set_content(text, cte="quoted-printable")
    if html and text:
        mail.add_alternative(html, subtype="html", cte="quoted-printable")
    elif html:
        mail.set_content(html, subtype="html", cte="quoted-printable")


def render(mail: EmailMessage, key: DkimKey | None) -> bytes:
    """The bytes sent after DATA, DKIM-signed when a key is given."""
    raw = mail.as_bytes(policy=WIRE_POLICY)
    if key is None:
        return raw
    signed = [name.lower().encode("ascii") for name in SIGNED_HEADERS if name in mail]
    return dkim_signature(raw, key, signed) + raw


def check_dkim_key(key: DkimKey) -> None:
    """Sign a probe at start-up, so a bad key stops the worker, not every message."""
    try:
        dkim_signature(b"From: probe@example.com\r\n\r\nprobe\r\n", key, [b"from"])
    except dkim.DKIMException as err:
        raise ValueError(f"unusable DKIM key: {err}") from None


def dkim_signature(raw: bytes, key: DkimKey, headers: list[bytes]) -> bytes:
    """The DKIM-Signature header line (relaxed/relaxed: survives relays re-folding)."""
    signature: bytes = dkim.sign(
        raw,
        key.selector.encode("ascii"),
        key.domain.encode("ascii"),
        key.private_key_pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=headers,
    )
    return signature
