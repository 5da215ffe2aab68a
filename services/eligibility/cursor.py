"""Opaque page tokens for ListSuppressions. Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
import re

VERSION = "1"
_HASH = re.compile(r"^[0-9a-f]{64}$")


def encode_page_token(channel: int, contact_hash: str) -> str:
    """A token that resumes the listing just after the entry (channel, contact_hash)."""
    raw = f"{VERSION}|{channel}|{contact_hash}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[int, str]:
    """The position a token stands for; ValueError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ValueError("not a page token") from err
    parts = raw.split("|")
    if (
        len(parts) != 3
        or parts[0] != VERSION
        or not parts[1].isdigit()
        or not _HASH.match(parts[2])
    ):
        raise ValueError("not a page token")
    return int(parts[1]), parts[2]
