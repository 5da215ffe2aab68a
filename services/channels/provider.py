"""What a channel worker hands a provider, what it gets back, and the Protocol
every vendor implements. Adding a vendor is one module, one test and one line
in `registry.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

Outcome = Literal["sent", "transient", "permanent"]
# What a provider's answer says about the contact point itself; the worker
# publishes it as Feedback (services/channels/feedback.py).
Signal = Literal["hard_bounce", "complaint", "opt_out"]


@dataclass(frozen=True)
class WebPushTarget:
    """One browser subscription (RFC 8291 keys, base64url)."""

    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class Contact:
    """The contact points a channel needs; empty for in-app."""

    email: str = ""
    phone: str = ""
    webpush: tuple[WebPushTarget, ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    """One delivery, rendered for its channel, ready for a provider.

    Contact points and content are kept out of `repr` so that a message
    printed by accident never leaks them into logs.
    """

    tenant_id: str
    intent_id: str
    delivery_id: str
    user_id: str
    channel: str
    category: str
    kind: str
    content: Mapping[str, Any] = field(repr=False)
    contact: Contact = field(default_factory=Contact, repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict)
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class SendResult:
    """A provider's answer for one delivery.

    `reason` is a code from shared/reasons.py; `detail` is human-readable and
    must never contain a contact point or a message body.
    """

    delivery_id: str
    outcome: Outcome
    reason: str = ""
    detail: str = ""
    provider_message_id: str = ""
    retry_after_s: float | None = None
    # Web push endpoints the push service said are gone (404/410): the worker
    # removes them from the profile. Kept out of repr like every contact point.
    gone_endpoints: tuple[str, ...] = field(default=(), repr=False)
    # Provider facts worth reporting on the event (e.g. SMS segments), closed keys.
    facts: Mapping[str, str] = field(default_factory=dict)
    # The answer says the contact point is gone for good (SMTP 5.1.x: a hard
    # bounce): the worker reports it as feedback, and eligibility lists it.
    signal: Signal | None = None


def sent(delivery_id: str, provider_message_id: str = "") -> SendResult:
    return SendResult(delivery_id, "sent", "sent", provider_message_id=provider_message_id)


def transient(
    delivery_id: str, reason: str, detail: str = "", retry_after_s: float | None = None
) -> SendResult:
    return SendResult(delivery_id, "transient", reason, detail, retry_after_s=retry_after_s)


def permanent(delivery_id: str, reason: str, detail: str = "") -> SendResult:
    return SendResult(delivery_id, "permanent", reason, detail)


class Provider(Protocol):
    """A vendor behind one channel. `send` answers every message it was given.

    It may raise TransientError for a failure of the whole call (vendor down);
    the worker then treats every message of the call as transient.
    """

    name: str

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]: ...


async def close_provider(provider: Provider) -> None:
    """Close what the provider holds open (HTTP clients), if it holds anything."""
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        await aclose()
