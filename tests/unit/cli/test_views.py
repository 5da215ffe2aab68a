from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from sendmesh.inapp.v1 import inbox_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.views import (
    channel_label,
    delivery_row,
    inbox_row,
    inbox_state,
    inbox_table,
    inbox_view,
    iso_time,
    state_label,
    time_of_day,
)


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


def _message(**states: int) -> inbox_pb2.InboxMessage:
    m = inbox_pb2.InboxMessage(message_id="m1", title="Hi [b]there[/b]", body="Body")
    m.created_at.FromSeconds(1_700_000_000)
    for name, seconds in states.items():
        getattr(m, name).FromSeconds(seconds)
    return m


def test_an_inbox_message_is_new_seen_or_read_and_may_be_archived_too():
    assert inbox_state(_message()) == "new"
    assert inbox_state(_message(seen_at=1)) == "seen"
    assert inbox_state(_message(seen_at=1, read_at=1)) == "read"
    assert inbox_state(_message(archived_at=1)) == "new, archived"


def test_an_inbox_row_carries_every_state_timestamp():
    row = inbox_row(_message(seen_at=1_700_000_001, read_at=1_700_000_002))
    assert (row["state"], row["archived_at"]) == ("read", "")
    assert (row["seen_at"], row["read_at"]) == (
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:22.000Z",
    )


def test_the_inbox_table_shows_the_counts_ids_and_states_and_no_markup():
    reply = inbox_pb2.ListInboxResponse(
        messages=[_message(seen_at=1)], unread_count=4, unseen_count=2
    )
    console = Console(width=200, record=True, color_system=None)
    console.print(inbox_table(inbox_view("u1", reply, "unread")))
    text = console.export_text()
    assert "inbox of u1: 4 unread, 2 unseen (unread shown)" in text
    assert "m1" in text and "seen" in text and "Hi [b]there[/b]" in text
