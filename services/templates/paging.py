"""Opaque page tokens for ListTemplates and ListTemplateVersions. Pure: no I/O.

A token holds the last item shown (a template id, or a version number) and
the query that made it, so it cannot be replayed against another listing.
"""

from __future__ import annotations

import base64
import binascii
import json

VERSION = 1
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """0 means the default; more than the maximum is the maximum (AIP-158)."""
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(listing: str, made_for: str, last: str | int) -> str:
    raw = json.dumps([VERSION, listing, made_for, last])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(listing: str, made_for: str, token: str) -> str | int | None:
    """The last item of the previous page (None for ""); ValueError if the token
    is not one of ours or was made for another query."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, kind, query, last = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as err:
        raise ValueError("not a page token of this listing") from err
    if version != VERSION or kind != listing or not isinstance(last, str | int):
        raise ValueError("not a page token of this listing")
    if query != made_for:
        raise ValueError("made for another query")
    return last
