from __future__ import annotations

import pytest

from services.templates.paging import decode_page_token, encode_page_token, page_size


def test_a_token_gives_back_the_last_item_it_was_made_with():
    assert decode_page_token("versions", "cart", encode_page_token("versions", "cart", 7)) == 7
    assert decode_page_token("templates", "", encode_page_token("templates", "", "b")) == "b"
    assert decode_page_token("templates", "", "") is None


def test_a_token_made_for_another_query_or_listing_is_refused():
    token = encode_page_token("versions", "cart", 7)
    with pytest.raises(ValueError, match="another query"):
        decode_page_token("versions", "welcome", token)
    with pytest.raises(ValueError, match="not a page token"):
        decode_page_token("templates", "cart", token)
    with pytest.raises(ValueError, match="not a page token"):
        decode_page_token("templates", "", "garbage!")


def test_page_size_zero_is_the_default_and_large_ones_are_capped():
    assert (page_size(0), page_size(3), page_size(5000)) == (50, 3, 1000)
