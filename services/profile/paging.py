"""Opaque page tokens and page sizes for the list RPCs. Pure: no I/O.

A token names the last item of the page it ended (its time and row id), so
the next page starts just after it however many rows arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

VERSION = "1"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Position:
    """Where a newest-first listing stopped: (time, row id) of its last item."""

    at: datetime
    row_id: int


def page_size(requested: int) -> int:
    """0 means the default; more than the maximum is the maximum (AIP-158)."""
    if requested < 0:
        raise ValueError("must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(kind: str, position: Position) -> str:
    raw = f"{VERSION}|{kind}|{position.at.isoformat()}|{position.row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(kind: str, token: str) -> Position | None:
    """The position a token stands for (None for ""); ValueError if it is not
    one of ours for this kind of listing."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, token_kind, at, row_id = raw.split("|")
        when = datetime.fromisoformat(at)
        position = Position(when, int(row_id))
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise ValueError("not a page token of this listing") from err
    if version != VERSION or token_kind != kind or when.tzinfo is None:
        raise ValueError("not a page token of this listing")
    return position
