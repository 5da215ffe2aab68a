from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.scheduler.paging import Position, decode_page_token, encode_page_token

POSITION = Position(datetime(2026, 11, 23, 5, 1, 2, 345678, tzinfo=UTC), 42, "d-1")


@pytest.mark.parametrize("intent_id", ["", "i1"])
def test_a_page_token_decodes_to_the_position_it_was_made_from(intent_id):
    assert decode_page_token(encode_page_token(POSITION, intent_id), intent_id) == POSITION


def test_a_token_made_for_another_intent_filter_is_refused():
    token = encode_page_token(POSITION, "i1")
    with pytest.raises(ValueError, match="another intent_id"):
        decode_page_token(token, "")


@pytest.mark.parametrize(
    "token", ["", "%%%", "bm90IGEgdG9rZW4", "WzEsICJ4IiwgMSwgImQiLCAiIl0", "WzFd", "MQ"]
)
def test_anything_else_is_not_a_page_token(token):
    with pytest.raises(ValueError):
        decode_page_token(token, "")
