"""The Web Push rules, as pure functions: what a message may carry (RFC 8030
TTL, Urgency, Topic; the RFC 8291 size limit) and what a push service's
answers mean for a delivery. No I/O: the provider in providers/vapid.py does it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from services.channels.provider import SendResult, permanent, sent, transient
from shared import reasons
from shared.errors import SendmeshError, TransientError

Urgency = Literal["very-low", "low", "normal", "high"]  # RFC 8030 §5.3
URGENCIES: tuple[str, ...] = get_args(Urgency)
MAX_TTL_S = 2_419_200  # four weeks, the cap push services apply
SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII only: str.isdigit() accepts "²"
TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # RFC 8030 §5.4
# RFC 8291 §4: 4096 octets of body, less the aes128gcm header (86), the padding
# delimiter (1) and the AEAD tag (16). (4078 was the limit of the older aesgcm.)
MAX_PAYLOAD = 3993


class Rejected(ValueError):
    """A message refused before sending; its text is safe as a detail."""


@dataclass(frozen=True)
class PushOptions:
    ttl_s: int
    urgency: str
    topic: str = ""


@dataclass(frozen=True)
class Answer:
    """What one subscription's push service made of one message."""

    outcome: Literal["accepted", "gone", "transient", "permanent"]
    reason: str = ""
    detail: str = ""
    retry_after_s: float | None = None

    @classmethod
    def failure(cls, err: SendmeshError) -> Answer:
        outcome: Literal["transient", "permanent"] = (
            "transient" if isinstance(err, TransientError) else "permanent"
        )
        return cls(outcome, err.reason, err.detail, getattr(err, "retry_after_s", None))


def push_options(metadata: Mapping[str, str], ttl_s: int, urgency: str) -> PushOptions:
    """The settings' TTL and Urgency, or the message's valid overrides."""
    ttl_text = metadata.get("ttl_s", str(ttl_s))
    if not SECONDS.fullmatch(ttl_text) or int(ttl_text) > MAX_TTL_S:
        raise Rejected(f"ttl_s must be a whole number of seconds up to {MAX_TTL_S}")
    urgency = metadata.get("urgency", urgency)
    if urgency not in URGENCIES:
        raise Rejected(f"urgency must be one of {', '.join(URGENCIES)}")
    topic = metadata.get("topic", "")
    if topic and not TOPIC.match(topic):
        raise Rejected("topic must be 1 to 32 base64url characters")
    return PushOptions(int(ttl_text), urgency, topic)


def push_headers(options: PushOptions) -> dict[str, str]:
    headers = {
        "TTL": str(options.ttl_s),
        "Urgency": options.urgency,
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
    }
    if options.topic:
        headers["Topic"] = options.topic
    return headers


def encode_payload(content: Mapping[str, Any]) -> bytes:
    """The JSON the service worker receives, refused when it cannot fit."""
    fields = {key: str(content.get(key, "")) for key in ("title", "body", "icon", "url")}
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    if len(payload) > MAX_PAYLOAD:
        raise Rejected(f"payload is {len(payload)} bytes, over the {MAX_PAYLOAD} a push may carry")
    return payload


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    if SECONDS.fullmatch(value.strip()):
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, with no zone said
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(status: int, retry_after: str | None = None) -> Answer:
    """A push service's status code as an answer (RFC 8030 §5, §8.4)."""
    if 200 <= status < 300:
        return Answer("accepted")
    if status in (404, 410):
        return Answer("gone", reasons.SUBSCRIPTION_GONE)
    detail = f"push service answered {status}"
    if status == 429:
        return Answer("transient", reasons.RATE_LIMITED, detail, retry_after_s(retry_after))
    if status >= 500 or status == 408:
        return Answer("transient", reasons.PROVIDER_UNAVAILABLE, detail)
    return Answer("permanent", reasons.PROVIDER_REJECTED, detail)


def combine(delivery_id: str, answers: Sequence[tuple[str, Answer]]) -> SendResult:
    """One result for a delivery from its subscriptions' answers.

    One acceptance makes it sent; otherwise a retry is worth it if any answer
    was transient. Gone endpoints are listed whatever the outcome.
    """
    gone = tuple(endpoint for endpoint, a in answers if a.outcome == "gone")
    failed = [a for _, a in answers if a.outcome in ("transient", "permanent")]
    waits = [a.retry_after_s for a in failed if a.retry_after_s is not None]
    if any(a.outcome == "accepted" for _, a in answers):
        result = sent(delivery_id)
    elif first := next((a for a in failed if a.outcome == "transient"), None):
        result = transient(delivery_id, first.reason, first.detail, max(waits, default=None))
    elif failed:
        result = permanent(delivery_id, failed[0].reason, failed[0].detail)
    else:
        result = permanent(delivery_id, reasons.SUBSCRIPTION_GONE, "every subscription is gone")
    return replace(result, gone_endpoints=gone)


def audience(endpoint: str) -> str:
    """RFC 8292 §2: the origin of the push resource."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
