"""Field-level validation of Profiles API requests. Pure: (field, problem) pairs."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence, Sized
from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.profile.audience import MAX_ID, is_topic, is_user_id

Problems = Iterator[tuple[str, str]]

E164 = re.compile(r"\+[1-9]\d{6,14}")
LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
CATEGORY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ZONES = frozenset(available_timezones())
KNOWN_CHANNELS = frozenset(v.number for v in intent_pb2.Channel.DESCRIPTOR.values)
MINUTES_A_DAY = 1440
MAX_EVENT_NAME = 64
MAX_PROPERTIES = 64
MAX_RULE_WINDOW = timedelta(days=400)
CLOCK_SKEW = timedelta(minutes=5)


def user_id(field: str, value: str) -> Problems:
    if not is_user_id(value):
        yield field, f"required, 1-{MAX_ID} printable characters"


def count(field: str, items: Sized, limit: int) -> Problems:
    if not len(items):
        yield field, "at least one is required"
    elif len(items) > limit:
        yield field, f"at most {limit:,} per call"


def user_ids(field: str, values: Sequence[str], limit: int) -> Problems:
    if not values:
        yield field, "at least one user id is required"
    if len(values) > limit:
        yield field, f"at most {limit:,} per call"
        return
    for i, value in enumerate(values):
        yield from user_id(f"{field}[{i}]", value)


def topic(field: str, value: str) -> Problems:
    if not is_topic(value):
        yield field, "1-100 characters: lowercase letters, digits, '_', '.', '-'"


def timestamp(field: str, ts: Timestamp) -> Problems:
    try:
        if not 0 <= ts.nanos < 1_000_000_000:
            raise ValueError("nanos out of range")
        ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        yield field, "not a valid timestamp"


def profile(p: profile_pb2.Profile, *, allow_http_push: bool = False) -> Problems:
    yield from user_id("profile.user_id", p.user_id)
    if p.timezone and p.timezone not in ZONES:
        yield "profile.timezone", f"unknown IANA time zone {p.timezone!r}"
    if p.locale and not LOCALE.fullmatch(p.locale):
        yield "profile.locale", "a BCP 47 tag such as 'en' or 'de-AT'"
    email = p.contacts.email
    if email and (
        len(email) > 254 or email.count("@") != 1 or any(c in email for c in " \r\n<>,;")
    ):
        yield "profile.contacts.email", "not an email address"
    if p.contacts.phone and not E164.fullmatch(p.contacts.phone):
        yield "profile.contacts.phone", "an E.164 number such as +4366412345678"
    schemes = ("https://", "http://") if allow_http_push else ("https://",)
    for i, sub in enumerate(p.contacts.webpush):
        if not sub.endpoint.startswith(schemes) or not sub.p256dh or not sub.auth:
            yield f"profile.contacts.webpush[{i}]", "an https endpoint with p256dh and auth keys"
    if p.HasField("quiet_hours"):
        yield from quiet_hours("profile.quiet_hours", p.quiet_hours)


def quiet_hours(field: str, qh: profile_pb2.QuietHours) -> Problems:
    for name in ("start_minute", "end_minute"):
        if not 0 <= getattr(qh, name) < MINUTES_A_DAY:
            yield f"{field}.{name}", f"minutes after midnight, 0-{MINUTES_A_DAY - 1}"


def consent(field: str, c: profile_pb2.Consent, now: datetime) -> Problems:
    if c.channel not in KNOWN_CHANNELS:
        yield f"{field}.channel", f"unknown channel {c.channel}"
    if c.category and not CATEGORY.fullmatch(c.category):
        yield f"{field}.category", "empty (every category) or like an intent's category"
    if not c.source or len(c.source) > 64 or any(ord(ch) < 32 for ch in c.source):
        yield f"{field}.source", "required: where it came from (signup_form, sms_stop...), 1-64"
    if c.HasField("at"):
        bad = list(timestamp(f"{field}.at", c.at))
        yield from bad
        # A statement from the future would stay in force until then.
        if not bad and c.at.ToDatetime(tzinfo=UTC) > now + CLOCK_SKEW:
            yield f"{field}.at", "in the future"


def event(field: str, e: profile_pb2.BehaviourEvent) -> Problems:
    if not e.name or len(e.name) > MAX_EVENT_NAME:
        yield f"{field}.name", f"required, at most {MAX_EVENT_NAME} characters"
    if e.HasField("occurred_at"):
        yield from timestamp(f"{field}.occurred_at", e.occurred_at)
    if len(e.properties) > MAX_PROPERTIES:
        yield f"{field}.properties", f"at most {MAX_PROPERTIES} entries"
    for key, value in e.properties.items():
        if not key or len(key) > 64 or len(value) > 1024:
            yield f"{field}.properties[{key[:64]}]", "keys 1-64 characters, values at most 1024"


def rule(field: str, r: intent_pb2.BehaviourRule) -> Problems:
    if not r.event or len(r.event) > MAX_EVENT_NAME:
        yield f"{field}.event", f"required, at most {MAX_EVENT_NAME} characters"
    window = r.within.ToTimedelta() if r.HasField("within") else timedelta(0)
    if not timedelta(0) < window <= MAX_RULE_WINDOW:
        yield f"{field}.within", "a duration above 0 and at most 400 days"


def page(field: str, size: int) -> Problems:
    if size < 0:
        yield field, "must not be negative"


def user_event(field: str, item: profile_pb2.UserEvent) -> Problems:
    yield from user_id(f"{field}.user_id", item.user_id)
    yield from event(f"{field}.event", item.event)


def rule_check(field: str, item: profile_pb2.RuleCheck) -> Problems:
    yield from user_id(f"{field}.user_id", item.user_id)
    for j, r in enumerate(item.rules):
        yield from rule(f"{field}.rules[{j}]", r)


def list_events(request: profile_pb2.ListEventsRequest) -> Problems:
    yield from user_id("user_id", request.user_id)
    if len(request.name) > MAX_EVENT_NAME:
        yield "name", f"at most {MAX_EVENT_NAME} characters"
    bad_time = False
    for name in ("since", "until"):
        if request.HasField(name):
            for problem in timestamp(name, getattr(request, name)):
                bad_time = True
                yield problem
    both = request.HasField("since") and request.HasField("until")
    if both and not bad_time and request.until.ToDatetime() <= request.since.ToDatetime():
        yield "until", "must be after since"
    yield from page("page_size", request.page_size)
