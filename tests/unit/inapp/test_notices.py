from __future__ import annotations

import struct

import pytest
from sendmesh.inapp.v1 import inbox_pb2

from services.inapp.notices import decode_notice, encode_notice, watch_keys


def _events() -> list[inbox_pb2.InboxEvent]:
    return [
        inbox_pb2.InboxEvent(
            delivered=inbox_pb2.InboxMessage(message_id="m1", user_id="u1", title="Hi")
        ),
        inbox_pb2.InboxEvent(
            changed=inbox_pb2.InboxChange(
                user_id="u2", kind=inbox_pb2.INBOX_CHANGE_KIND_READ, message_ids=["m2"]
            )
        ),
        inbox_pb2.InboxEvent(
            delivered=inbox_pb2.InboxMessage(message_id="m3", user_id="u2", title="Hé ✓")
        ),
    ]


def test_a_notice_carries_its_tenant_and_events():
    tenant, events = decode_notice(encode_notice("acme", _events()))
    assert tenant == "acme"
    assert events == _events()


def test_watchers_are_keyed_by_tenant_and_the_user_each_event_is_about():
    keys = [key for key, _ in watch_keys(encode_notice("acme", _events()))]
    assert keys == [("acme", "u1"), ("acme", "u2"), ("acme", "u2")]


def test_an_event_about_nobody_reaches_no_watcher():
    assert watch_keys(encode_notice("acme", [inbox_pb2.InboxEvent(unread_count=3)])) == []


def test_a_version_1_frame_of_messages_reads_as_delivered_events():
    # What a replica from before state changes were announced still sends.
    message = inbox_pb2.InboxMessage(message_id="m1", user_id="u1").SerializeToString()
    frame = struct.pack(">BH", 1, 4) + b"acme" + struct.pack(">I", len(message)) + message
    tenant, [event] = decode_notice(frame)
    assert (tenant, event.delivered.message_id, event.delivered.user_id) == ("acme", "m1", "u1")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x03\x00\x00",
        b"\x02\x00\x09acme",
        encode_notice("acme", _events()) + b"\x00\x00",
        encode_notice("acme", _events())[:-3],
    ],
)
def test_a_broken_frame_is_refused(frame):
    with pytest.raises(ValueError):
        decode_notice(frame)
