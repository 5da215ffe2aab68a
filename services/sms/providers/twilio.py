"""SMS through a Twilio-style Messages API: one form POST per message.

The messages of a batch go out concurrently, at most `sms_concurrency` at a
time. Each request carries the delivery id as an idempotency token so that a
retried call cannot put a second copy on somebody's phone where the provider
honours it. Nothing is retried here: a transient answer goes back to the
worker, whose delay queues are the one retry policy of this hop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.channels.provider import OutgoingMessage, SendResult, permanent, sent, transient
from services.channels.settings import ChannelSettings
from services.sms.phone import Unusable, to_e164
from services.sms.segments import measure
from services.sms.settings import TWILIO, SmsSettings
from shared import reasons
from shared.clock import utcnow
from shared.errors import TransientError
from shared.logs import get_logger

log = get_logger(__name__)

API_VERSION = "2010-04-01"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
# 21211: not a valid phone number; 21614: not a number that can receive SMS.
INVALID_NUMBER_CODES = frozenset({21211, 21614})
# 21610: the person texted STOP; the provider blocks every message to them.
UNSUBSCRIBED_CODE = 21610
# A Retry-After beyond this is a provider bug; it must not park a delivery for days.
MAX_RETRY_AFTER_S = 3600.0


@dataclass(frozen=True)
class Refused:
    """The provider refused our credentials (401) for this delivery."""

    delivery_id: str


Answer = SendResult | Refused


class TwilioSmsProvider:
    """The `twilio` SMS provider, built from SmsSettings (see services/sms/README.md)."""

    name = TWILIO

    def __init__(self, settings: SmsSettings) -> None:
        sid = settings.sms_account_sid
        self.url = f"{settings.sms_api_base}/{API_VERSION}/Accounts/{sid}/Messages.json"
        self.sender = sender_fields(settings)
        self.callback_url = settings.sms_status_callback_url
        self.region = settings.sms_default_region
        self.gate = asyncio.Semaphore(settings.sms_concurrency)
        self.client = httpx.AsyncClient(
            auth=httpx.BasicAuth(sid, settings.sms_auth_token.get_secret_value()),
            timeout=settings.sms_timeout_s,
            limits=httpx.Limits(max_connections=settings.sms_concurrency),
        )

    @classmethod
    def from_settings(cls, settings: ChannelSettings) -> TwilioSmsProvider:
        """The registry's factory: an sms worker's settings are SmsSettings."""
        if not isinstance(settings, SmsSettings):
            raise TypeError(f"{cls.name} needs SmsSettings, got {type(settings).__name__}")
        return cls(settings)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        refused = asyncio.Event()
        answers = await asyncio.gather(*(self._send_gated(m, refused) for m in messages))
        return self._settle(answers)

    def _settle(self, answers: Sequence[Answer]) -> list[SendResult]:
        """Bad credentials fail the whole call, unless some messages already went:
        raising would make the worker send those again."""
        if not refused_any(answers):
            return [a for a in answers if isinstance(a, SendResult)]
        log.error(
            "sms provider refused the credentials: check SENDMESH_SMS_ACCOUNT_SID "
            "and SENDMESH_SMS_AUTH_TOKEN",
            provider=self.name,
            status=401,
            refused=sum(isinstance(a, Refused) for a in answers),
        )
        if not any(isinstance(a, SendResult) and a.outcome == "sent" for a in answers):
            raise TransientError("credentials refused (http 401)", reason=reasons.PROVIDER_ERROR)
        return [
            transient(a.delivery_id, reasons.PROVIDER_ERROR, "credentials refused (http 401)")
            if isinstance(a, Refused)
            else a
            for a in answers
        ]

    async def _send_gated(self, message: OutgoingMessage, refused: asyncio.Event) -> Answer:
        async with self.gate:
            # Once the credentials are refused, the rest of the call would be too.
            if refused.is_set():
                return Refused(message.delivery_id)
            answer = await self._send_one(message)
            if isinstance(answer, Refused):
                refused.set()
            return answer

    async def _send_one(self, message: OutgoingMessage) -> Answer:
        delivery_id = message.delivery_id
        text = str(message.content.get("text", ""))
        if not text.strip():
            return permanent(delivery_id, reasons.NO_CONTENT, "empty sms text")
        to = to_e164(message.contact.phone, self.region)
        if isinstance(to, Unusable):
            return permanent(delivery_id, reasons.INVALID_CONTACT, f"phone number {to.why}")
        answer = await self._post(delivery_id, self.form(to, text))
        if isinstance(answer, SendResult) and answer.outcome == "sent":
            return replace(answer, facts=measure(text).facts())
        return answer

    def form(self, to: str, text: str) -> dict[str, str]:
        fields = {"To": to, **self.sender, "Body": text}
        if self.callback_url:
            fields["StatusCallback"] = self.callback_url
        return fields

    async def _post(self, delivery_id: str, form: dict[str, str]) -> Answer:
        # Error texts are the exception's type only: httpx's own messages may quote the request.
        try:
            response = await self.client.post(
                self.url, data=form, headers={IDEMPOTENCY_HEADER: delivery_id}
            )
        except httpx.TransportError as err:  # refused, reset, timed out (TimeoutException)
            return transient(delivery_id, reasons.PROVIDER_UNAVAILABLE, type(err).__name__)
        except httpx.HTTPError as err:
            return transient(delivery_id, reasons.PROVIDER_ERROR, type(err).__name__)
        answer = classify(delivery_id, response.status_code, response.headers, body_of(response))
        if (
            isinstance(answer, SendResult)
            and answer.outcome == "sent"
            and not answer.provider_message_id
        ):
            log.warning("sms accepted without a message sid", provider=self.name)
        return answer


def sender_fields(settings: SmsSettings) -> dict[str, str]:
    """Who the message is from: a messaging service (its own sender pool) or a number."""
    if settings.sms_messaging_service_sid:
        return {"MessagingServiceSid": settings.sms_messaging_service_sid}
    return {"From": settings.sms_from_number}


def body_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON object the provider answered, or {} for anything else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify(delivery_id: str, status: int, headers: httpx.Headers, body: dict[str, Any]) -> Answer:
    """The outcome of one answer from the Messages API."""
    if 200 <= status < 300:
        sid = body.get("sid")
        return sent(delivery_id, sid if isinstance(sid, str) else "")
    if status == 401:
        return Refused(delivery_id)
    if status == 429:
        wait = retry_after_s(headers.get("Retry-After"))
        return transient(delivery_id, reasons.RATE_LIMITED, "http 429", retry_after_s=wait)
    if status >= 500 or status == 408:
        return transient(delivery_id, reasons.PROVIDER_UNAVAILABLE, f"http {status}")
    if status < 400:  # a redirect: api_base points somewhere wrong, which ops can fix
        return transient(delivery_id, reasons.PROVIDER_ERROR, f"unexpected http {status}")
    return rejection(delivery_id, status, body.get("code"))


def rejection(delivery_id: str, status: int, code: object) -> SendResult:
    """A 4xx, by the provider's error code. Its message is never kept: it quotes the number."""
    if not isinstance(code, int) or isinstance(code, bool):
        return permanent(delivery_id, reasons.PROVIDER_REJECTED, f"http {status}")
    detail = f"http {status} code {code}"
    if code in INVALID_NUMBER_CODES:
        return permanent(delivery_id, reasons.INVALID_CONTACT, detail)
    if code == UNSUBSCRIBED_CODE:
        # The carrier holds a STOP we never heard: the worker reports it as
        # feedback, so consent and the suppression list catch up.
        return replace(permanent(delivery_id, reasons.OPTED_OUT, detail), signal="opt_out")
    return permanent(delivery_id, reasons.PROVIDER_REJECTED, detail)


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - utcnow()).total_seconds()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def refused_any(answers: Sequence[Answer]) -> bool:
    return any(isinstance(a, Refused) for a in answers)
