"""Email feedback by webhook: hard bounces and complaints reported by the mail
provider after the SMTP session (an ESP's bounce and complaint notifications,
through a small adapter where its format differs).

    POST /webhooks/email/feedback
    Authorization: Bearer <the tenant's API key>      (or x-api-key: <key>)
    {"kind": "bounce" | "complaint", "address": "ann@example.com",
     "tenant": "acme", "occurred_at": "2030-01-15T09:00:00Z", "message_id": "<...>"}

`tenant`, `occurred_at` and `message_id` are optional; a given tenant must be
the key's. The body may also be a list of up to 100 such reports, all or none
accepted. `bounce` means a permanent (hard) bounce: soft bounces are not sent.
Answers 200 {"accepted": n} once the feedback is confirmed by the broker; 401
without a known key, 403 for another tenant, 400 naming each bad field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels import feedback
from services.channels.settings import ChannelSettings
from services.channels.webhooks import answered, publish_or_503
from services.eligibility.suppression import contact_problem
from shared.auth import key_from_metadata, tenant_for_key
from shared.bus.publisher import Bus
from shared.clock import to_timestamp, utcnow
from shared.runtime import Context

CHANNEL = "email"
EMAIL = intent_pb2.Channel.CHANNEL_EMAIL
SOURCE = "email_webhook"
MAX_REPORTS = 100
Kind = feedback_pb2.FeedbackKind
KINDS = {"bounce": Kind.FEEDBACK_KIND_HARD_BOUNCE, "complaint": Kind.FEEDBACK_KIND_COMPLAINT}
FIELDS = frozenset({"kind", "address", "tenant", "occurred_at", "message_id"})


class WrongTenant(Exception):
    """A report names another tenant than the key's."""


class Invalid(ValueError):
    """field -> problem, for a 400 that names every bad field (never the address)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def parse_reports(doc: Any, tenant: str, now: datetime) -> list[feedback_pb2.Feedback]:
    """The feedback a request body reports for `tenant`; Invalid, or
    WrongTenant when a report names another. Pure."""
    items = doc if isinstance(doc, list) else [doc]
    if not 1 <= len(items) <= MAX_REPORTS:
        raise Invalid({"": f"1-{MAX_REPORTS} reports"})
    problems: dict[str, str] = {}
    found: list[feedback_pb2.Feedback] = []
    for i, item in enumerate(items):
        where = f"[{i}]." if isinstance(doc, list) else ""
        parsed = _report(item, tenant, now, where, problems)
        if parsed is not None:
            found.append(parsed)
    if problems:
        raise Invalid(problems)
    return found


def _report(
    item: Any, tenant: str, now: datetime, where: str, problems: dict[str, str]
) -> feedback_pb2.Feedback | None:
    if not isinstance(item, dict):
        problems[where.rstrip(".") or "body"] = "a JSON object"
        return None
    before = len(problems)
    for name in sorted(set(item) - FIELDS):
        problems[where + name] = "unknown field"
    name = item.get("kind")
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        problems[where + "kind"] = "bounce or complaint"
    address = item.get("address")
    why = contact_problem(EMAIL, address) if isinstance(address, str) else None
    if not isinstance(address, str) or why:
        problems[where + "address"] = why or "an email address"
    if item.get("tenant", tenant) != tenant:
        raise WrongTenant()
    at = _instant(item.get("occurred_at"), now, where, problems)
    ref = item.get("message_id", "")
    if not isinstance(ref, str) or len(ref) > 998:
        problems[where + "message_id"] = "a string of at most 998 characters"
    if len(problems) > before or kind is None or not isinstance(address, str):
        return None
    return feedback_pb2.Feedback(
        tenant_id=tenant,
        channel=EMAIL,
        kind=kind,
        contact=address.strip(),
        occurred_at=to_timestamp(at),
        source=SOURCE,
        provider_ref=ref,
        detail=f"{name} reported by webhook",
    )


def _instant(value: Any, now: datetime, where: str, problems: dict[str, str]) -> datetime:
    if value is None:
        return now
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        problems[where + "occurred_at"] = "an RFC 3339 time with its offset"
        return now
    return min(at.astimezone(UTC), now)  # a provider's clock ahead of ours is not the future


class EmailWebhook:
    def __init__(self, bus: Bus, api_keys: dict[str, str]) -> None:
        self.bus = bus
        self.api_keys = api_keys

    @classmethod
    def from_context(cls, ctx: Context, settings: ChannelSettings) -> EmailWebhook:
        return cls(ctx.bus, settings.api_keys)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/email/feedback", self.feedback)]

    async def prepare(self) -> None:
        return None

    async def feedback(self, request: web.Request) -> web.Response:
        key = key_from_metadata(tuple((k.lower(), v) for k, v in request.headers.items()))
        tenant = tenant_for_key(key, self.api_keys) if key else None
        if tenant is None:
            answered(CHANNEL, "unauthenticated")
            raise web.HTTPUnauthorized(text="an API key is required")
        try:
            doc = json.loads(await request.read())
            items = parse_reports(doc, tenant, utcnow())
        except ValueError as err:  # Invalid, or a body that is not JSON
            answered(CHANNEL, "malformed")
            problems = err.problems if isinstance(err, Invalid) else {"body": "not JSON"}
            return web.json_response({"errors": problems}, status=400)
        except WrongTenant:
            answered(CHANNEL, "forbidden")
            raise web.HTTPForbidden(text="a report names another tenant than the key's") from None
        await publish_or_503(self.bus, CHANNEL, [feedback.to_bus(self.bus.topology, items)])
        answered(CHANNEL, "accepted")
        return web.json_response({"accepted": len(items)})
