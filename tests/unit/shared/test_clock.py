"""to_timestamp agrees with protobuf's own conversion everywhere it can be asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from shared.clock import from_timestamp, to_timestamp

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Far enough from the ends that every offset keeps the instant in range.
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def reference(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


@given(moments, offsets)
def test_an_aware_datetime_converts_as_protobuf_converts_it(moment, tz):
    dt = moment.replace(tzinfo=tz)
    assert to_timestamp(dt) == reference(dt)
    assert from_timestamp(to_timestamp(dt)) == dt


@given(moments)
def test_a_naive_datetime_is_utc(moment):
    assert to_timestamp(moment) == reference(moment.replace(tzinfo=UTC))


def test_before_the_epoch_the_nanos_stay_positive():
    ts = to_timestamp(datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC))
    assert (ts.seconds, ts.nanos) == (-1, 250_000_000)
