"""Field-level validation of send intents. Pure: returns (field, problem) pairs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sendmesh.intent.v1 import intent_pb2

from services.profile.audience import audience_problems
from services.templates import validation as templates
from shared.envelopes import ChannelValue

C = intent_pb2.Channel
MAX_BATCH = 1000
MAX_KEY_LEN = 255
MAX_METADATA = 32
MAX_HORIZON = timedelta(days=366)
MAX_RULE_WINDOW = timedelta(days=400)
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KNOWN_CHANNELS = {C.CHANNEL_EMAIL, C.CHANNEL_SMS, C.CHANNEL_WEBPUSH, C.CHANNEL_INAPP}
KNOWN_KINDS = {intent_pb2.KIND_TRANSACTIONAL, intent_pb2.KIND_MARKETING}
KNOWN_STRATEGIES = {s.number for s in intent_pb2.Strategy.DESCRIPTOR.values}
CHANNEL_FIELD = {
    C.CHANNEL_EMAIL: "email",
    C.CHANNEL_SMS: "sms",
    C.CHANNEL_WEBPUSH: "webpush",
    C.CHANNEL_INAPP: "inapp",
}

Problems = Iterator[tuple[str, str]]


def fingerprint(intent: intent_pb2.SendIntent) -> str:
    """Identifies the request's content, to tell a replay from a key reused for another intent.

    A pinned template is left out: it is what intake added, not what the
    caller sent, so a replay after a template edit is still a replay.
    """
    if intent.content.template.HasField("pinned"):
        as_sent = intent_pb2.SendIntent()
        as_sent.CopyFrom(intent)
        as_sent.content.template.ClearField("pinned")
        intent = as_sent
    return hashlib.sha256(intent.SerializeToString(deterministic=True)).hexdigest()


def validate_intent(intent: intent_pb2.SendIntent, now: datetime, at: str = "intent") -> Problems:
    """Every problem with `intent`, each naming its field under `at`."""
    yield from _text(f"{at}.idempotency_key", intent.idempotency_key, required=True)
    if not CATEGORY.match(intent.category):
        yield f"{at}.category", "required: lowercase letters, digits, '_', '.', '-' (max 64)"
    if intent.kind not in KNOWN_KINDS:
        yield f"{at}.kind", "must be KIND_TRANSACTIONAL or KIND_MARKETING"
    if intent.strategy not in KNOWN_STRATEGIES:
        yield f"{at}.strategy", f"unknown strategy {intent.strategy}"
    yield from _audience(intent.audience, f"{at}.audience")
    yield from _channels(intent, at)
    yield from _timing(intent.timing, now, f"{at}.timing")
    yield from _rules(intent, at)
    yield from _text(f"{at}.cancel_key", intent.cancel_key, required=False)
    if len(intent.metadata) > MAX_METADATA:
        yield f"{at}.metadata", f"at most {MAX_METADATA} entries"
    for key, value in intent.metadata.items():
        if not key or len(key) > 64 or len(value) > 512:
            yield f"{at}.metadata[{key[:64]}]", "keys 1-64 characters, values at most 512"


def _text(field: str, value: str, *, required: bool) -> Problems:
    if required and not value:
        yield field, "required"
    elif len(value) > MAX_KEY_LEN or any(ord(ch) < 32 for ch in value):
        yield field, f"at most {MAX_KEY_LEN} printable characters"


def _audience(audience: intent_pb2.Audience, at: str) -> Problems:
    # Exactly one of user_ids, topic or segment; the profile service, which
    # resolves audiences, owns the rules (and the segment parser).
    yield from audience_problems(audience, at)


def _channels(intent: intent_pb2.SendIntent, at: str) -> Problems:
    if not intent.channels:
        yield f"{at}.channels", "at least one channel is required"
    seen: set[ChannelValue] = set()
    for i, channel in enumerate(intent.channels):
        if channel not in KNOWN_CHANNELS:
            yield f"{at}.channels[{i}]", f"unknown channel {channel}"
        elif channel in seen:
            yield f"{at}.channels[{i}]", "duplicate channel"
        seen.add(channel)
    yield from _content(intent, seen & KNOWN_CHANNELS, f"{at}.content")


def _content(intent: intent_pb2.SendIntent, channels: set[ChannelValue], at: str) -> Problems:
    source = intent.content.WhichOneof("source")
    if source is None:
        yield at, "a template or inline content is required"
    elif source == "template":
        yield from _template_ref(intent.content.template, f"{at}.template")
    else:
        inline = intent.content.inline
        for channel in sorted(channels):
            field = CHANNEL_FIELD[channel]
            if not inline.HasField(field):  # type: ignore[arg-type]
                yield f"{at}.inline.{field}", f"required for channel {field}"
            else:
                yield from _inline_part(inline, field, f"{at}.inline.{field}")


def _template_ref(ref: intent_pb2.TemplateRef, at: str) -> Problems:
    # Whether the template and version exist is asked of the store at submit
    # (services/templates/pinning.py); these are the rules without it.
    yield from templates.template_id(f"{at}.template_id", ref.template_id)
    yield from templates.version(f"{at}.version", ref.version)
    yield from templates.locale(f"{at}.locale", ref.locale)
    if ref.HasField("pinned"):
        yield f"{at}.pinned", "set by intake at submit: leave it empty"


def _inline_part(inline: intent_pb2.InlineContent, field: str, at: str) -> Problems:
    if field == "email":
        if not inline.email.subject:
            yield f"{at}.subject", "required"
        if not (inline.email.text or inline.email.html):
            yield f"{at}.text", "text or html is required"
    elif field == "sms" and not inline.sms.text:
        yield f"{at}.text", "required"
    elif (field == "webpush" and not (inline.webpush.title or inline.webpush.body)) or (
        field == "inapp" and not (inline.inapp.title or inline.inapp.body)
    ):
        yield f"{at}.title", "title or body is required"


def _timing(timing: intent_pb2.Timing, now: datetime, at: str) -> Problems:
    send_at = _instant(timing, "send_at", at)
    expires_at = _instant(timing, "expires_at", at)
    if isinstance(send_at, tuple):
        yield send_at
        send_at = None
    if isinstance(expires_at, tuple):
        yield expires_at
        expires_at = None
    if send_at is not None and send_at > now + MAX_HORIZON:
        yield f"{at}.send_at", "at most one year ahead"
    if expires_at is not None and expires_at <= now:
        yield f"{at}.expires_at", "already in the past"
    if send_at is not None and expires_at is not None and expires_at <= send_at:
        yield f"{at}.expires_at", "must be after send_at"


def _instant(timing: intent_pb2.Timing, name: str, at: str) -> datetime | tuple[str, str] | None:
    if not timing.HasField(name):  # type: ignore[arg-type]
        return None
    ts = getattr(timing, name)
    try:
        if not 0 <= ts.nanos < 1_000_000_000:
            raise ValueError("nanos out of range")
        return ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return f"{at}.{name}", "not a valid timestamp"


def _rules(intent: intent_pb2.SendIntent, at: str) -> Problems:
    for i, rule in enumerate(intent.exclude_if):
        where = f"{at}.exclude_if[{i}]"
        if not rule.event or len(rule.event) > 64:
            yield f"{where}.event", "required, at most 64 characters"
        window = rule.within.ToTimedelta() if rule.HasField("within") else timedelta(0)
        if not timedelta(0) < window <= MAX_RULE_WINDOW:
            yield f"{where}.within", "a duration above 0 and at most 400 days"


def validate_batch(intents: list[intent_pb2.SendIntent], now: datetime) -> Problems:
    if not intents:
        yield "intents", "at least one intent is required"
    if len(intents) > MAX_BATCH:
        yield "intents", f"at most {MAX_BATCH} intents per batch, got {len(intents)}"
        return
    for i, intent in enumerate(intents):
        yield from validate_intent(intent, now, f"intents[{i}]")
