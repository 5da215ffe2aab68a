"""Who an intent is for: user ids, a topic or a segment. Pure: no I/O.

Intake validates audiences with `audience_problems` when an intent is
submitted, and the profile service with the same function for CountAudience,
so both accept exactly the same audiences.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from sendmesh.intent.v1 import intent_pb2

from services.profile.segments import SegmentError, parse

Problems = Iterator[tuple[str, str]]

MAX_RECIPIENTS = 10_000
MAX_ID = 255
MAX_SEGMENT = 4096
TOPIC = re.compile(r"[a-z0-9_.-]{1,100}")
USER_IDS, TOPIC_FIELD, SEGMENT = "user_ids", "topic", "segment"


def is_user_id(value: str) -> bool:
    return 0 < len(value) <= MAX_ID and not any(ord(ch) < 32 for ch in value)


def is_topic(value: str) -> bool:
    return TOPIC.fullmatch(value) is not None


def kind_of(audience: intent_pb2.Audience) -> str:
    """`user_ids`, `topic` or `segment`: the way the audience names recipients."""
    if audience.topic:
        return TOPIC_FIELD
    return SEGMENT if audience.segment else USER_IDS


def audience_problems(audience: intent_pb2.Audience, at: str) -> Problems:
    """Every problem with `audience`, each naming its field under `at`."""
    given = [
        name
        for name, present in (
            (USER_IDS, bool(audience.user_ids)),
            (TOPIC_FIELD, bool(audience.topic)),
            (SEGMENT, bool(audience.segment)),
        )
        if present
    ]
    if not given:
        yield f"{at}.user_ids", "at least one recipient is required (or a topic or a segment)"
    elif len(given) > 1:
        yield at, f"exactly one of user_ids, topic or segment; got {' and '.join(given)}"
    elif given == [USER_IDS]:
        yield from _user_ids(audience.user_ids, f"{at}.user_ids")
    elif given == [TOPIC_FIELD]:
        if not is_topic(audience.topic):
            yield f"{at}.topic", "1-100 characters: lowercase letters, digits, '_', '.', '-'"
    else:
        yield from segment_problems(audience.segment, f"{at}.segment")


def _user_ids(ids: Sequence[str], at: str) -> Problems:
    if len(ids) > MAX_RECIPIENTS:
        yield at, f"at most {MAX_RECIPIENTS} recipients per intent"
    seen: set[str] = set()
    for i, user in enumerate(ids):
        if not is_user_id(user):
            yield f"{at}[{i}]", f"1-{MAX_ID} printable characters"
        elif user in seen:
            yield f"{at}[{i}]", "duplicate recipient"
        seen.add(user)


def segment_problems(segment: str, at: str) -> Problems:
    if len(segment) > MAX_SEGMENT:
        yield at, f"at most {MAX_SEGMENT} characters"
        return
    try:
        parse(segment)
    except SegmentError as err:
        yield at, str(err)
