"""Inbox API requests -> domain values, collecting every field violation.

No grpc here: the servicer raises the collected Violations as INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.inapp.v1 import inbox_pb2

from services.inapp import store
from services.inapp.cursor import decode_page_token
from services.inapp.states import Status, Target, up_to_now
from shared.clock import from_timestamp
from shared.grpc.status import Violations

DEFAULT_PAGE_SIZE = 20
MAX_IDS_PER_CALL = 1000
MAX_USER_ID_LENGTH = 256
# The inbox_messages.message_id column's width: a longer id names no message.
MAX_MESSAGE_ID_LENGTH = 64

STATUSES: dict[int, Status] = {
    inbox_pb2.INBOX_STATUS_UNSPECIFIED: Status.ALL,
    inbox_pb2.INBOX_STATUS_ALL: Status.ALL,
    inbox_pb2.INBOX_STATUS_UNREAD: Status.UNREAD,
    inbox_pb2.INBOX_STATUS_UNSEEN: Status.UNSEEN,
    inbox_pb2.INBOX_STATUS_ARCHIVED: Status.ARCHIVED,
}


def require_user(user_id: str, problems: Violations) -> None:
    if not user_id:
        problems.add("user_id", "required")
    elif len(user_id) > MAX_USER_ID_LENGTH:
        problems.add("user_id", f"at most {MAX_USER_ID_LENGTH} characters")


def page_size(requested: int, problems: Violations) -> int:
    # AIP-158: unset means the default, above the maximum is coerced to it.
    if requested < 0:
        problems.add("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, store.MAX_PAGE_SIZE)


def status(value: int, problems: Violations) -> Status:
    found = STATUSES.get(value)
    if found is None:
        problems.add("status", f"unknown status {value}")
        return Status.ALL
    return found


def page_after(token: str, wanted: Status, problems: Violations) -> store.Position | None:
    if not token:
        return None
    try:
        position, made_for = decode_page_token(token)
    except ValueError:
        problems.add("page_token", "not a token from a previous ListInbox response")
        return None
    if made_for is not wanted:
        problems.add("page_token", f"made for status {made_for.value}, not {wanted.value}")
        return None
    return position


def named_ids(ids: Sequence[str], problems: Violations) -> Target:
    """The messages a call names: 1 to 1000 ids, none empty or too long to be one."""
    if not ids:
        problems.add("message_ids", "at least one message id is required")
    elif len(ids) > MAX_IDS_PER_CALL:
        problems.add("message_ids", f"at most {MAX_IDS_PER_CALL} per call")
    for i, message_id in enumerate(ids):
        if not message_id:
            problems.add(f"message_ids[{i}]", "must not be empty")
        elif len(message_id) > MAX_MESSAGE_ID_LENGTH:
            problems.add(f"message_ids[{i}]", f"at most {MAX_MESSAGE_ID_LENGTH} characters")
    return Target.named(tuple(dict.fromkeys(ids)))


def feed_up_to(up_to: Timestamp | None, now: datetime, problems: Violations) -> Target:
    """Every message in the feed delivered up to `up_to` (unset: now; later than now: now)."""
    requested = None
    if up_to is not None:
        try:
            requested = from_timestamp(up_to)
        except (ValueError, OverflowError):
            problems.add("up_to", "not a valid timestamp")
    return Target.feed_up_to(up_to_now(requested, now))


def seen_target(request: inbox_pb2.MarkSeenRequest, now: datetime, problems: Violations) -> Target:
    """MarkSeen names messages or asks for all of them, not both."""
    up_to = request.up_to if request.HasField("up_to") else None
    if request.all:
        if request.message_ids:
            problems.add("message_ids", "must be empty when all is set")
        return feed_up_to(up_to, now, problems)
    if up_to is not None:
        problems.add("up_to", "only with all")
    return named_ids(request.message_ids, problems)
