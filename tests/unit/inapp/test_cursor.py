from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from services.inapp.cursor import decode_page_token, encode_page_token
from services.inapp.states import Status
from services.inapp.store import Position

POSITION = Position(datetime(2026, 11, 23, 5, 1, 2, 345678, tzinfo=UTC), "m-1")


@pytest.mark.parametrize("status", list(Status))
def test_a_page_token_decodes_to_the_position_and_filter_it_was_made_from(status):
    assert decode_page_token(encode_page_token(POSITION, status)) == (POSITION, status)


def test_a_token_from_before_status_filters_resumes_the_whole_feed():
    raw = f"1|{POSITION.created_at.isoformat()}|{POSITION.message_id}"
    token = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    assert decode_page_token(token) == (POSITION, Status.ALL)


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "%%%",
        "bm90IGEgdG9rZW4",
        "MnwyMDI2LTAxLTAxfG0",
        _token("2|starred|2026-11-23T05:01:02+00:00|m-1"),
        _token("2|all|2026-11-23T05:01:02|m-1"),
        _token("2|all|yesterday|m-1"),
        _token("3|all|2026-11-23T05:01:02+00:00|m-1"),
    ],
)
def test_anything_else_is_not_a_page_token(token):
    with pytest.raises(ValueError):
        decode_page_token(token)
