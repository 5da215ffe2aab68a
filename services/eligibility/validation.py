"""Field-level checks of the Eligibility API's requests. Pure: no I/O.

Each check appends (field, why) to a Violations and returns what it parsed;
messages never repeat a contact.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sendmesh.eligibility.v1 import eligibility_pb2
from sendmesh.intent.v1 import intent_pb2

from services.eligibility import suppression
from services.eligibility.quiet_hours import QuietPolicy, is_valid_minute, zone_named
from shared.grpc.status import Violations

Channel = intent_pb2.Channel
Kind = intent_pb2.Kind

MAX_ENTRIES = 1000
MAX_DETAIL = 500
DEFAULT_PAGE_SIZE = 100
KNOWN_CHANNELS = {
    Channel.CHANNEL_EMAIL,
    Channel.CHANNEL_SMS,
    Channel.CHANNEL_WEBPUSH,
    Channel.CHANNEL_INAPP,
}
KNOWN_KINDS = {Kind.KIND_TRANSACTIONAL, Kind.KIND_MARKETING}
LISTED = "CHANNEL_EMAIL or CHANNEL_SMS"


def check_request(request: eligibility_pb2.CheckRequest, problems: Violations) -> datetime | None:
    """Validates a Check; returns its `at` (None: now)."""
    intent = request.intent
    if not intent.channels:
        problems.add("intent.channels", "at least one channel is required")
    for i, channel in enumerate(intent.channels):
        if channel not in KNOWN_CHANNELS:
            problems.add(f"intent.channels[{i}]", "not a known channel")
    if intent.kind not in KNOWN_KINDS:
        problems.add("intent.kind", "must be KIND_TRANSACTIONAL or KIND_MARKETING")
    if not request.profile.user_id:
        problems.add("profile.user_id", "required")
    return _timestamp(request, "at", problems)


def _timestamp(
    message: eligibility_pb2.CheckRequest | eligibility_pb2.Suppression,
    field: str,
    problems: Violations,
) -> datetime | None:
    """The message's `at` (None if unset or invalid)."""
    if not message.HasField("at"):
        return None
    try:
        return message.at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        problems.add(field, "not a valid timestamp")
        return None


def entries_count(field: str, count: int, problems: Violations) -> None:
    if count == 0:
        problems.add(field, "at least one entry is required")
    elif count > MAX_ENTRIES:
        problems.add(field, f"at most {MAX_ENTRIES} per call")


def listed_channel(field: str, channel: int, problems: Violations) -> bool:
    if channel in suppression.LISTED_CHANNELS:
        return True
    problems.add(field, LISTED)
    return False


def new_entry(
    i: int, entry: eligibility_pb2.Suppression, key: bytes, now: datetime, problems: Violations
) -> tuple[int, str, int, str, datetime] | None:
    """(channel, contact hash, reason, detail, at) of entries[i] of AddSuppressions."""
    at = f"entries[{i}]"
    before = len(problems.items)
    if listed_channel(f"{at}.channel", entry.channel, problems):
        problem = suppression.contact_problem(entry.channel, entry.contact)
        if problem:
            problems.add(f"{at}.contact", problem)
    if entry.reason not in suppression.REASON_NAMES:
        problems.add(f"{at}.reason", "not a known SuppressionReason")
    if len(entry.detail) > MAX_DETAIL:
        problems.add(f"{at}.detail", f"at most {MAX_DETAIL} characters")
    when = _timestamp(entry, f"{at}.at", problems) or now
    if len(problems.items) > before:
        return None
    # Unspecified reads as an operator's manual entry.
    reason = entry.reason or eligibility_pb2.SUPPRESSION_REASON_MANUAL
    digest = suppression.contact_hash(key, entry.channel, entry.contact)
    return entry.channel, digest, reason, entry.detail, when


def removal_key(
    i: int, entry: eligibility_pb2.Suppression, key: bytes, problems: Violations
) -> tuple[int, str] | None:
    """(channel, contact hash) of entries[i] of RemoveSuppressions."""
    at = f"entries[{i}]"
    if not listed_channel(f"{at}.channel", entry.channel, problems):
        return None
    if entry.contact and entry.contact_hash:
        problems.add(at, "either contact or contact_hash, not both")
        return None
    if entry.contact_hash:
        digest = entry.contact_hash.lower()
        if not suppression.HASH_PATTERN.match(digest):
            problems.add(f"{at}.contact_hash", "64 hex digits, as ListSuppressions returns")
            return None
        return entry.channel, digest
    problem = suppression.contact_problem(entry.channel, entry.contact)
    if problem:
        problems.add(
            f"{at}.contact",
            "contact or contact_hash is required" if problem == "required" else problem,
        )
        return None
    return entry.channel, suppression.contact_hash(key, entry.channel, entry.contact)


def list_filter(
    request: eligibility_pb2.ListSuppressionsRequest, problems: Violations
) -> int | None:
    """The channel to list (None: every channel)."""
    if request.channel == Channel.CHANNEL_UNSPECIFIED:
        return None
    if request.channel not in suppression.LISTED_CHANNELS:
        problems.add("channel", f"{LISTED}, or unspecified for both")
    return request.channel


def page_size(requested: int, maximum: int, problems: Violations) -> int:
    # AIP-158: unset means the default, above the maximum is coerced to it.
    if requested < 0:
        problems.add("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, maximum)


def quiet_policy(
    request: eligibility_pb2.SetQuietHoursRequest, problems: Violations
) -> QuietPolicy:
    if not request.HasField("policy"):
        problems.add("policy", "required")
    p = request.policy
    for name, minute in (("start_minute", p.start_minute), ("end_minute", p.end_minute)):
        if not is_valid_minute(minute):
            problems.add(f"policy.{name}", "minutes after midnight, 0 to 1439")
    if p.enabled and p.start_minute == p.end_minute:
        problems.add("policy.end_minute", "must differ from start_minute when enabled")
    if p.default_timezone and zone_named(p.default_timezone) is None:
        problems.add("policy.default_timezone", "an IANA time zone such as Europe/Vienna")
    return QuietPolicy(p.enabled, p.start_minute, p.end_minute, p.default_timezone)
