"""The SMS provider's webhooks: inbound keywords and delivery receipts.

    POST /webhooks/sms/{tenant}/inbound   STOP / START / HELP -> Feedback
    POST /webhooks/sms/{tenant}/status    delivered / failed  -> DeliveryEvent
                                          (+ HARD_BOUNCE Feedback on 30005/30006)

Every request must carry a valid X-Twilio-Signature made with the provider's
auth token over the URL it called (SENDMESH_WEBHOOK_PUBLIC_URL when a proxy
stands in front) and the form; anything else is 403 and publishes nothing.
A request is answered 200 only once what it published is confirmed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import feedback
from services.channels.settings import ChannelSettings
from services.channels.webhooks import answered, publish_or_503
from services.sms import receipts
from services.sms.inbound import (
    DeliveryReceipt,
    InboundMessage,
    Keyword,
    MalformedWebhook,
    is_signed,
    parse_form,
    parse_inbound,
    parse_status,
)
from services.sms.phone import Unusable, to_e164
from services.sms.settings import SmsSettings
from shared import envelopes, metrics
from shared.bus.publisher import Bus, to_events
from shared.clock import now_timestamp
from shared.logs import get_logger
from shared.runtime import Context

log = get_logger(__name__)

T = TypeVar("T")
A = TypeVar("A")

CHANNEL = "sms"
SOURCE = "sms_keyword"
SIGNATURE_HEADER = "X-Twilio-Signature"
# What the provider's inbound webhook expects back: TwiML, here saying nothing
# (the provider's own opt-out handling answers STOP and HELP).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
Kind = feedback_pb2.FeedbackKind
KINDS: dict[Keyword, feedback_pb2.FeedbackKind.ValueType] = {
    "stop": Kind.FEEDBACK_KIND_OPT_OUT,
    "start": Kind.FEEDBACK_KIND_OPT_IN,
    "help": Kind.FEEDBACK_KIND_HELP,
}


class SmsWebhook:
    def __init__(self, bus: Bus, engine: AsyncEngine, settings: SmsSettings) -> None:
        self.bus = bus
        self.engine = engine
        self.auth_token = settings.sms_auth_token.get_secret_value()
        self.public_url = settings.webhook_public_url.rstrip("/")
        self.region = settings.sms_default_region
        self.tenants = frozenset(settings.api_keys.values())

    @classmethod
    def from_context(cls, ctx: Context, settings: ChannelSettings) -> SmsWebhook:
        if not isinstance(settings, SmsSettings):
            raise TypeError(f"sms webhooks need SmsSettings, got {type(settings).__name__}")
        return cls(ctx.bus, ctx.engine, settings)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/webhooks/sms/{tenant}/inbound", self.inbound),
            web.post("/webhooks/sms/{tenant}/status", self.status),
        ]

    async def prepare(self) -> None:
        await receipts.ensure_index(self.engine)

    async def inbound(self, request: web.Request) -> web.Response:
        tenant, form = await self._verified(request)
        message = _parsed(parse_inbound, form)
        item = self._feedback(tenant, message)
        if item is None:
            answered(CHANNEL, "ignored")  # a plain reply, or a number we cannot read
        else:
            await publish_or_503(self.bus, CHANNEL, [feedback.to_bus(self.bus.topology, [item])])
            answered(CHANNEL, "accepted")
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def status(self, request: web.Request) -> web.Response:
        tenant, form = await self._verified(request)
        receipt = _parsed(parse_status, form)
        if receipt.outcome == "pending":
            answered(CHANNEL, "ignored")
            return web.Response()
        sent = await receipts.find_sent(self.engine, tenant, receipt.message_sid)
        if sent is None:
            # Not ours (another worker's database, or long pruned): nothing to report.
            log.info("receipt_for_unknown_message", status=receipt.status)
            answered(CHANNEL, "ignored")
            return web.Response()
        event = receipts.receipt_event(sent, receipt)
        batch = envelopes.event_batch([event])
        outs = [to_events(self.bus.topology, batch)]
        bounce = self._bounce(sent, receipt, form.get("To", ""))
        if bounce is not None:
            outs.append(feedback.to_bus(self.bus.topology, [bounce]))
        await publish_or_503(self.bus, CHANNEL, outs)
        outcome = "delivered" if receipt.outcome == "delivered" else "undelivered"
        metrics.DELIVERIES.labels(CHANNEL, sent.provider, outcome).inc()
        answered(CHANNEL, "accepted")
        return web.Response()

    async def _verified(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """The tenant and the form of a request the provider signed, or an HTTP error."""
        pairs = _parsed(parse_form, await request.read())
        url = self.public_url + request.path_qs if self.public_url else str(request.url)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not is_signed(url, pairs, signature, self.auth_token):
            answered(CHANNEL, "forbidden")
            log.warning("webhook_signature_refused", channel=CHANNEL, path=request.path)
            raise web.HTTPForbidden(text="bad signature")
        tenant = request.match_info["tenant"]
        if not TENANT.match(tenant) or (self.tenants and tenant not in self.tenants):
            answered(CHANNEL, "malformed")
            raise web.HTTPNotFound(text="unknown tenant")
        return tenant, dict(pairs)

    def _bounce(
        self, sent: receipts.Sent, receipt: DeliveryReceipt, to: str
    ) -> feedback_pb2.Feedback | None:
        """The hard bounce a failed receipt reports (30005, 30006), if its To is a number."""
        if not receipts.is_hard_bounce(receipt):
            return None
        number = to_e164(to, self.region)
        if isinstance(number, Unusable):
            log.warning("receipt_number_unusable", why=number.why, error=receipt.error_code)
            return None
        return receipts.bounce_feedback(sent, receipt, number)

    def _feedback(self, tenant: str, message: InboundMessage) -> feedback_pb2.Feedback | None:
        if message.keyword is None:
            return None
        number = to_e164(message.from_number, self.region)
        if isinstance(number, Unusable):
            log.warning("inbound_number_unusable", why=number.why, keyword=message.keyword)
            return None
        return feedback_pb2.Feedback(
            tenant_id=tenant,
            channel=intent_pb2.Channel.CHANNEL_SMS,
            kind=KINDS[message.keyword],
            contact=number,
            occurred_at=now_timestamp(),
            source=SOURCE,
            provider_ref=message.message_sid,
            detail=f"{message.keyword} keyword",
        )


def _parsed(parse: Callable[[A], T], value: A) -> T:
    """`parse(value)`, or 400 saying what is wrong (never a number)."""
    try:
        return parse(value)
    except MalformedWebhook as err:
        answered(CHANNEL, "malformed")
        raise web.HTTPBadRequest(text=str(err)) from None
