"""Opaque page tokens for ListDeferred. Pure: no I/O.

A token holds where the page ended and which intent filter made it, so a
token cannot be replayed against another query.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

VERSION = 1


@dataclass(frozen=True)
class Position:
    """The last delivery shown. Listing order is (due_at, envelope_id, delivery_id)."""

    due_at: datetime
    envelope_id: int
    delivery_id: str


def encode_page_token(position: Position, intent_id: str) -> str:
    """A token that resumes the listing just after `position`."""
    raw = json.dumps(
        [
            VERSION,
            position.due_at.isoformat(),
            position.envelope_id,
            position.delivery_id,
            intent_id,
        ]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, intent_id: str) -> Position:
    """The position a token stands for; ValueError if it is not one of ours or
    was made for another intent filter."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, due_at, envelope_id, delivery_id, made_for = json.loads(raw)
        when = datetime.fromisoformat(due_at)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ValueError("not a page token") from err
    if version != VERSION or when.tzinfo is None:
        raise ValueError("not a page token")
    if not isinstance(envelope_id, int) or not isinstance(delivery_id, str):
        raise ValueError("not a page token")
    if made_for != intent_id:
        raise ValueError("made for another intent_id")
    return Position(when, envelope_id, delivery_id)
