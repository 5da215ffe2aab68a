"""Message and intent ids: UUIDv7, unique, ordered by the millisecond they were made in."""

from __future__ import annotations

import time
import uuid

from shared.ids import new_id, new_ids


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
