from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.channels.ratelimit import TokenBucket, bucket_for, chunks

# Float sums of many small waits drift by a few ulps: allowed, nothing more.
EPSILON = 1e-6


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_fresh_bucket_sends_a_burst_at_once_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=10, burst=3, clock=clock)

    waits = [bucket.take() for _ in range(5)]

    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_tokens_refill_with_time_up_to_the_burst_only():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=2, burst=4, clock=clock)
    assert bucket.take(4) == 0
    clock.now += 60  # a long quiet spell refills to the burst, not to 120

    assert bucket.delay_for(4) == 0
    assert bucket.delay_for(4) == 0  # asking does not take
    assert bucket.take(4) == 0
    assert bucket.take(1) == pytest.approx(0.5)


def test_reservations_queue_callers_in_the_order_they_asked():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=4, burst=2, clock=clock)
    bucket.take(2)

    first, second = bucket.take(2), bucket.take(2)

    assert (first, second) == pytest.approx((0.5, 1.0))


def test_a_clock_that_steps_back_adds_no_tokens():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_s=1, burst=1, clock=clock)
    bucket.take()
    clock.now -= 100

    assert bucket.delay_for() == pytest.approx(1.0)


def test_more_than_a_burst_at_once_or_nothing_is_refused():
    bucket = TokenBucket(rate_per_s=5, burst=2, clock=FakeClock())
    with pytest.raises(ValueError, match="burst"):
        bucket.take(3)
    with pytest.raises(ValueError, match="burst"):
        bucket.delay_for(0)


def test_settings_of_rate_zero_mean_no_bucket_and_burst_zero_one_seconds_worth():
    assert bucket_for(0, 10) is None
    limited = bucket_for(7.4, 0)
    assert limited is not None and (limited.rate_per_s, limited.burst) == (7.4, 7)
    slow = bucket_for(0.2, 0)
    assert slow is not None and slow.burst == 1


def test_chunks_cover_every_item_in_order_in_slices_of_at_most_the_size():
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 3)) == []


@given(
    rate=st.floats(min_value=0.5, max_value=200),
    burst=st.integers(min_value=1, max_value=20),
    schedule=st.lists(
        st.tuples(st.floats(min_value=0, max_value=2), st.integers(min_value=1, max_value=20)),
        min_size=1,
        max_size=60,
    ),
)
def test_over_any_schedule_sends_in_any_window_stay_within_burst_plus_rate_times_window(
    rate, burst, schedule
):
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock)
    sends: list[tuple[float, int]] = []
    for gap, wanted in schedule:
        clock.now += gap
        n = min(wanted, burst)
        sends.append((clock.now + bucket.take(n), n))

    times = sorted(sends)
    for i, (start, _) in enumerate(times):
        for j in range(i, len(times)):
            end = times[j][0]
            sent = sum(n for _, n in times[i : j + 1])
            assert sent <= burst + rate * (end - start) + EPSILON
