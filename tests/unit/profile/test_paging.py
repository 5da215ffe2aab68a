"""Opaque page tokens and page sizes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.profile.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Position,
    decode_page_token,
    encode_page_token,
    page_size,
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 2**63 - 1),
)
def test_a_token_stands_for_the_position_it_was_made_from(at, row_id):
    position = Position(at, row_id)
    token = encode_page_token("events", position)
    assert decode_page_token("events", token) == position
    assert token.isascii() and "=" not in token


def test_an_empty_token_is_the_first_page():
    assert decode_page_token("events", "") is None


def test_a_token_of_another_listing_is_refused():
    token = encode_page_token("consents", Position(datetime(2030, 1, 1, tzinfo=UTC), 7))
    with pytest.raises(ValueError, match="not a page token"):
        decode_page_token("events", token)


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "bm90IGEgdG9rZW4",  # "not a token"
        base64.urlsafe_b64encode(b"1|events|2030-01-01T00:00:00|7").decode(),  # naive time
        base64.urlsafe_b64encode(b"1|events|2030-01-01T00:00:00+00:00|x").decode(),
        base64.urlsafe_b64encode(b"9|events|2030-01-01T00:00:00+00:00|7").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_token_that_is_not_ours_is_refused(token):
    with pytest.raises(ValueError, match="not a page token"):
        decode_page_token("events", token)


def test_page_size_zero_is_the_default_and_above_the_maximum_is_the_maximum():
    assert page_size(0) == DEFAULT_PAGE_SIZE
    assert page_size(7) == 7
    assert page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    with pytest.raises(ValueError):
        page_size(-1)
