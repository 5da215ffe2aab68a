"""Message and intent ids: UUIDv7, unique, ordered by the millisecond they were made in."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.ids import _DELIVERY_NS, delivery_id, new_id, new_ids


def test_a_batch_of_ids_is_valid_version_7_and_unique():
    ids = new_ids(5000)
    assert len(set(ids)) == 5000
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, value)


def test_ids_sort_by_the_millisecond_they_were_made_in():
    first = new_id()
    time.sleep(0.002)
    later = new_ids(3)
    assert all(first < value for value in later)
    assert uuid.UUID(first).int >> 80 <= time.time_ns() // 1_000_000


@given(st.text(max_size=40), st.text(max_size=40), st.integers(min_value=0, max_value=9))
def test_a_delivery_id_is_the_uuid5_of_its_intent_user_and_channel(intent_id, user_id, channel):
    name = f"{intent_id}\x1f{user_id}\x1f{channel}"
    assert delivery_id(intent_id, user_id, channel) == str(uuid.uuid5(_DELIVERY_NS, name))
