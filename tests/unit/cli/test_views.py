from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.views import channel_label, delivery_row, iso_time, state_label, time_of_day


def test_enum_values_read_as_short_lower_case_words():
    assert state_label(intent_pb2.DELIVERY_STATE_SENT) == "sent"
    assert channel_label(intent_pb2.CHANNEL_WEBPUSH) == "webpush"


def test_timestamps_print_in_utc_and_unset_ones_as_empty():
    assert iso_time(Timestamp(seconds=0)) == ""
    assert iso_time(Timestamp(seconds=1_700_000_000, nanos=5_000_000)) == "2023-11-14T22:13:20.005Z"


def test_a_delivery_row_shows_its_latest_decision():
    d = intake_pb2.DeliveryStatus(delivery_id="d1", user_id="u1", channel=intent_pb2.CHANNEL_INAPP)
    d.current.CopyFrom(
        intent_pb2.Decision(stage="inapp", state=intent_pb2.DELIVERY_STATE_SENT, reason="delivered")
    )
    row = delivery_row(d)
    assert (row["user_id"], row["channel"], row["state"]) == ("u1", "inapp", "sent")
    assert (row["reason"], row["stage"], row["at"]) == ("delivered", "inapp", "")


def test_tables_show_the_time_of_day_of_an_iso_timestamp():
    assert time_of_day("2026-11-23T05:43:21.796Z") == "05:43:21.796"
