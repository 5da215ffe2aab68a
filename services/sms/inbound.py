"""What the SMS provider tells us by webhook, parsed and checked. Pure: no I/O.

Three things arrive: a message a person sent us (we only care whether it is
an opt-out/opt-in/help keyword), a status callback (the delivery receipt of a
message we sent), and on both, an X-Twilio-Signature proving the provider sent it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

Keyword = Literal["stop", "start", "help"]
ReceiptOutcome = Literal["delivered", "failed", "pending"]

# Twilio's standard opt-out handling answers these words on their own.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), "stop"),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "start"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}
DELIVERED = frozenset({"delivered", "read"})
# canceled: a scheduled message that was never sent.
FAILED = frozenset({"failed", "undelivered", "canceled"})


class MalformedWebhook(ValueError):
    """A webhook body we cannot read; answer it 400 (the message never names a number)."""


@dataclass(frozen=True)
class InboundMessage:
    """A message a person sent us: who from, and the keyword it is, if any."""

    message_sid: str
    from_number: str = field(repr=False)
    keyword: Keyword | None


@dataclass(frozen=True)
class DeliveryReceipt:
    """A status callback for a message we sent (its SID is our provider_message_id)."""

    message_sid: str
    status: str
    outcome: ReceiptOutcome
    error_code: int | None = None


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body as (name, value) pairs, in order."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedWebhook("body is not UTF-8") from None
    return parse_qsl(text, keep_blank_values=True)


def keyword_of(text: str) -> Keyword | None:
    """stop, start or help when the whole message is one of the keywords, else None."""
    return KEYWORDS.get(text.strip().upper())


def parse_inbound(form: Mapping[str, str]) -> InboundMessage:
    """An inbound message webhook's fields as an InboundMessage."""
    sender = form.get("From", "").strip()
    sid = form.get("MessageSid", "").strip()
    if not sender or not sid:
        raise MalformedWebhook("inbound message without From or MessageSid")
    return InboundMessage(sid, sender, keyword_of(form.get("Body", "")))


def receipt_outcome(status: str) -> ReceiptOutcome:
    if status in DELIVERED:
        return "delivered"
    if status in FAILED:
        return "failed"
    return "pending"  # queued, sending, sent, accepted, scheduled...: not final


def parse_status(form: Mapping[str, str]) -> DeliveryReceipt:
    """A status callback's fields as a DeliveryReceipt."""
    sid = form.get("MessageSid", "").strip()
    status = form.get("MessageStatus", "").strip().lower()
    if not sid or not status:
        raise MalformedWebhook("status callback without MessageSid or MessageStatus")
    code = form.get("ErrorCode", "").strip()
    if code and not code.isdigit():
        raise MalformedWebhook("ErrorCode is not a number")
    return DeliveryReceipt(sid, status, receipt_outcome(status), int(code) if code else None)


def signature_of(url: str, params: Iterable[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature of a request: HMAC-SHA1 over the URL, then each
    parameter's name and value, sorted by name then value; base64."""
    by_name: dict[str, set[str]] = {}
    for name, value in params:
        by_name.setdefault(name, set()).add(value)
    signed = url + "".join(n + v for n in sorted(by_name) for v in sorted(by_name[n]))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> set[str]:
    """The URL with and without its port: the provider may have signed either."""
    parts = urlsplit(url)
    if parts.port is None:
        default = 443 if parts.scheme == "https" else 80
        with_port = parts._replace(netloc=f"{parts.netloc}:{default}")
        return {url, urlunsplit(with_port)}
    bare = parts._replace(netloc=parts.netloc[: parts.netloc.rfind(":")])
    return {url, urlunsplit(bare)}


def is_signed(url: str, params: Iterable[tuple[str, str]], signature: str, auth_token: str) -> bool:
    """Whether `signature` (the X-Twilio-Signature header) signs this request.

    `url` is the full URL the provider called (with its query string) and
    `params` the POST form fields. Compared in constant time.
    """
    if not auth_token or not signature:
        return False
    pairs = list(params)
    given = signature.encode()
    matches = [
        hmac.compare_digest(signature_of(u, pairs, auth_token).encode(), given)
        for u in url_variants(url)
    ]
    return any(matches)
