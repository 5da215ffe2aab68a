from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.inapp.cursor import decode_page_token, encode_page_token
from services.inapp.store import Position


def test_a_page_token_decodes_to_the_position_it_was_made_from():
    position = Position(datetime(2026, 11, 23, 5, 1, 2, 345678, tzinfo=UTC), "m-1")
    assert decode_page_token(encode_page_token(position)) == position


@pytest.mark.parametrize("token", ["", "%%%", "bm90IGEgdG9rZW4", "MnwyMDI2LTAxLTAxfG0"])
def test_anything_else_is_not_a_page_token(token):
    with pytest.raises(ValueError):
        decode_page_token(token)
