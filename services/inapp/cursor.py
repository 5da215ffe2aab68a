"""Opaque page tokens for ListInbox. Pure: no I/O.

A token names the last message shown and the status filter it was made for:
resuming with another filter is the caller's mistake (AIP-158), not a page.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from services.inapp.states import Status
from services.inapp.store import Position

VERSION = "2"
# Tokens handed out before status filters existed stand for the whole feed.
_V1 = "1"


def encode_page_token(position: Position, status: Status = Status.ALL) -> str:
    """A token that resumes the `status` listing just after `position`."""
    raw = f"{VERSION}|{status.value}|{position.created_at.isoformat()}|{position.message_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[Position, Status]:
    """The position and filter a token stands for; ValueError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("not a page token") from err
    version, _, rest = raw.partition("|")
    if version == _V1:
        status = Status.ALL
    elif version == VERSION:
        status_value, _, rest = rest.partition("|")
        status = _status(status_value)
    else:
        raise ValueError("not a page token")
    created_at, _, message_id = rest.partition("|")
    if not message_id:
        raise ValueError("not a page token")
    when = datetime.fromisoformat(created_at)
    if when.tzinfo is None:
        raise ValueError("not a page token")
    return Position(when, message_id), status


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError as err:
        raise ValueError("not a page token") from err
