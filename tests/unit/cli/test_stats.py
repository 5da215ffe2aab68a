from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.bench.stats import (
    latency_count,
    open_loop_offsets,
    per_second,
    percentile,
    summarize,
)


def test_percentiles_interpolate_between_closest_ranks():
    values = list(range(1, 101))
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100


def test_percentiles_ignore_input_order():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_a_single_value_is_every_percentile():
    assert percentile([7.0], 99) == 7.0


def test_no_values_have_no_percentile():
    assert math.isnan(percentile([], 50))


def test_a_percentile_outside_0_to_100_is_refused():
    with pytest.raises(ValueError):
        percentile([1.0], 101)


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1), st.floats(0, 100))
def test_a_percentile_lies_within_the_values(values, p):
    assert min(values) <= percentile(values, p) <= max(values)


def test_summary_orders_its_percentiles():
    s = summarize([float(v) for v in range(1000)])
    assert s.count == 1000
    assert s.p50_ms <= s.p95_ms <= s.p99_ms <= s.max_ms == 999


def test_rate_is_count_over_seconds():
    assert per_second(2000, 4.0) == 500
    assert math.isnan(per_second(10, 0))


def test_open_loop_sends_are_evenly_spaced_from_zero():
    assert open_loop_offsets(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError):
        open_loop_offsets(4, 0)


def test_latency_phase_is_bounded_in_time_but_not_below_a_minimum():
    assert latency_count(2000, 100.0, 30.0) == 2000
    assert latency_count(2000, 10.0, 30.0) == 300
    assert latency_count(2000, 0.5, 30.0) == 50
    assert latency_count(20, 0.5, 30.0) == 20
