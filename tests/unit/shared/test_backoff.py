"""Retry back-off: exponential steps, bounded jitter, Retry-After as a floor."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.bus.consumer import retry_later
from shared.bus.publisher import ATTEMPT_HEADER, Bus
from shared.bus.topology import RETRY_JITTER, Topology, compute_backoff

DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0)

attempts = st.integers(min_value=1, max_value=50)
draws = st.floats(min_value=0.0, max_value=1.0)
jitters = st.floats(min_value=0.0, max_value=1.0)
waits = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)


@given(attempts, draws, jitters)
def test_a_wait_is_within_its_steps_jitter_band_and_never_above_the_step(attempt, rand, jitter):
    backoff = compute_backoff(DELAYS, attempt, jitter=jitter, rand=rand)
    delay = DELAYS[backoff.step]
    assert delay * (1 - jitter) - 1e-9 <= backoff.wait_s <= delay


@given(attempts, draws)
def test_each_attempt_waits_on_the_next_step_until_the_longest(attempt, rand):
    backoff = compute_backoff(DELAYS, attempt, rand=rand)
    assert backoff.step == min(attempt - 1, len(DELAYS) - 1)


@given(attempts, draws, waits)
def test_a_retry_after_is_a_floor_up_to_the_longest_step(attempt, rand, retry_after):
    backoff = compute_backoff(DELAYS, attempt, retry_after_s=retry_after, rand=rand)
    assert backoff.wait_s >= min(retry_after, max(DELAYS))
    assert backoff.wait_s <= DELAYS[backoff.step]


@given(attempts, waits)
def test_a_retry_after_never_moves_a_retry_to_a_shorter_step(attempt, retry_after):
    plain = compute_backoff(DELAYS, attempt)
    floored = compute_backoff(DELAYS, attempt, retry_after_s=retry_after)
    assert floored.step >= plain.step


def test_the_draw_moves_the_wait_between_the_whole_delay_and_the_jitter_floor():
    assert compute_backoff(DELAYS, 2, rand=0.0).wait_s == 5.0
    assert compute_backoff(DELAYS, 2, rand=1.0).wait_s == 5.0 * (1 - RETRY_JITTER)


def test_two_failures_of_one_outage_come_back_at_different_times():
    first = compute_backoff(DELAYS, 3, rand=0.1).wait_s
    second = compute_backoff(DELAYS, 3, rand=0.9).wait_s
    assert first != second


def test_a_retry_goes_to_its_steps_delay_queue_expiring_at_the_jittered_wait():
    bus = Bus("amqp://unused", Topology("ns", DELAYS), "test")
    out = retry_later(bus, "send.sms", b"body", 2, rand=lambda: 0.5)
    assert (out.exchange, out.routing_key, out.body) == ("ns.delay.1", "send.sms", b"body")
    assert out.headers == {ATTEMPT_HEADER: 3}
    assert out.expiration_s == 5.0 * (1 - RETRY_JITTER * 0.5)


def test_a_429_retry_waits_at_least_its_retry_after():
    bus = Bus("amqp://unused", Topology("ns", DELAYS), "test")
    out = retry_later(bus, "send.sms", b"body", 1, retry_after_s=4.5, rand=lambda: 1.0)
    assert out.exchange == "ns.delay.1"  # the 1 s step is too short
    assert out.expiration_s == 4.5
