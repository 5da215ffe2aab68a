"""Opaque page tokens for ListInbox. Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from services.inapp.store import Position

VERSION = "1"


def encode_page_token(position: Position) -> str:
    """A token that resumes the feed just after `position`."""
    raw = f"{VERSION}|{position.created_at.isoformat()}|{position.message_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> Position:
    """The position a token stands for; ValueError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("not a page token") from err
    version, _, rest = raw.partition("|")
    created_at, _, message_id = rest.partition("|")
    if version != VERSION or not message_id:
        raise ValueError("not a page token")
    when = datetime.fromisoformat(created_at)
    if when.tzinfo is None:
        raise ValueError("not a page token")
    return Position(when, message_id)
