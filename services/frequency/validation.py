"""Field-level checks of Frequency API requests, and CapPolicy <-> Policy.

Each check adds (field, problem) pairs to a `Violations` and returns the
parsed value (or a harmless default when it is invalid).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.frequency.v1 import frequency_pb2
from sendmesh.intent.v1 import intent_pb2

from services.frequency import caps, windows
from services.frequency.caps import CALENDAR_DAY, ROLLING, Policy
from shared.envelopes import CHANNEL_NAMES
from shared.grpc.status import Violations

POLICY_ID = re.compile(r"^[a-z0-9_-]{1,64}$")
# As intents name them (services/intake/validation.py).
CATEGORY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
KINDS = {v.number for v in intent_pb2.Kind.DESCRIPTOR.values}
MIN_SPAN = timedelta(seconds=1)
MAX_SPAN = timedelta(days=366)
MAX_LIMIT = 100_000
MAX_USER_ID = 256
MAX_DELIVERY_ID = 128
# Instants a reservation may be made as of (cap windows reach days around them).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def required_text(value: str, field: str, most: int, problems: Violations) -> None:
    if not value:
        problems.add(field, "required")
    elif len(value) > most:
        problems.add(field, f"at most {most} characters")


def category(value: str, field: str, problems: Violations) -> None:
    if value and not CATEGORY.match(value):
        problems.add(field, "lowercase letters, digits, '_', '.', '-' (max 64), or empty for all")


def kind(value: int, field: str, problems: Violations) -> None:
    if value not in KINDS:
        problems.add(field, f"unknown kind {value}")


def zone(name: str, field: str, problems: Violations) -> tzinfo:
    """The named IANA zone; UTC when empty."""
    if not name:
        return UTC
    found = windows.zone_named(name)
    if found is None:
        problems.add(field, "not an IANA time zone (e.g. Europe/Paris)")
        return UTC
    return found


def instant(ts: Timestamp, field: str, problems: Violations, default: datetime) -> datetime:
    try:
        value = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        problems.add(field, "not a valid timestamp")
        return default
    if not EARLIEST <= value < LATEST:
        problems.add(field, f"between {EARLIEST.year} and {LATEST.year}")
        return default
    return value


def span(duration: Duration, field: str, problems: Violations) -> timedelta | None:
    if duration.seconds < 0 or duration.nanos < 0 or duration.nanos >= 1_000_000_000:
        problems.add(field, "must be a positive duration")
        return None
    value = timedelta(seconds=duration.seconds, microseconds=duration.nanos // 1000)
    if not MIN_SPAN <= value <= MAX_SPAN:
        problems.add(field, f"between {MIN_SPAN.seconds}s and {MAX_SPAN.days} days")
        return None
    return value


def policy_from_proto(p: frequency_pb2.CapPolicy, problems: Violations) -> Policy:
    """The domain policy, with every problem named under `policy.`."""
    if not POLICY_ID.match(p.policy_id):
        problems.add("policy.policy_id", "required: [a-z0-9_-]{1,64}")
    if p.channel not in CHANNEL_NAMES:
        problems.add("policy.channel", f"unknown channel {p.channel}")
    category(p.category, "policy.category", problems)
    kind(p.kind, "policy.kind", problems)
    if not 0 <= p.limit <= MAX_LIMIT:
        problems.add("policy.limit", f"between 0 and {MAX_LIMIT}")
    window = span(p.window, "policy.window", problems) if p.HasField("window") else None
    gap = span(p.min_gap, "policy.min_gap", problems) if p.HasField("min_gap") else None
    _window_rules(p, problems)
    if p.limit == 0 and not p.HasField("min_gap"):
        problems.add("policy.limit", "a limit above 0 or a min_gap is required")
    return Policy(
        policy_id=p.policy_id,
        limit=p.limit,
        window_kind=p.window_kind,
        window=window,
        min_gap=gap,
        channel=p.channel,
        category=p.category,
        kind=caps.normal_kind(p.kind),
    )


def _window_rules(p: frequency_pb2.CapPolicy, problems: Violations) -> None:
    if p.limit > 0 and p.window_kind not in (CALENDAR_DAY, ROLLING):
        problems.add(
            "policy.window_kind", "a limit needs WINDOW_KIND_CALENDAR_DAY or WINDOW_KIND_ROLLING"
        )
    if p.limit == 0 and p.window_kind:
        problems.add("policy.window_kind", "a window needs a limit above 0")
    if p.window_kind == ROLLING and not p.HasField("window"):
        problems.add("policy.window", "required for WINDOW_KIND_ROLLING")
    if p.window_kind != ROLLING and p.HasField("window"):
        problems.add("policy.window", "only for WINDOW_KIND_ROLLING")


def policy_to_proto(policy: Policy) -> frequency_pb2.CapPolicy:
    out = frequency_pb2.CapPolicy(
        policy_id=policy.policy_id,
        channel=policy.channel,  # type: ignore[arg-type]
        category=policy.category,
        kind=policy.kind,  # type: ignore[arg-type]
        limit=policy.limit,
        window_kind=policy.window_kind,  # type: ignore[arg-type]
    )
    if policy.window:
        out.window.FromTimedelta(policy.window)
    if policy.min_gap:
        out.min_gap.FromTimedelta(policy.min_gap)
    return out
