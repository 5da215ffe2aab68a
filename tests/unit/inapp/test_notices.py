from __future__ import annotations

import pytest
from sendmesh.inapp.v1 import inbox_pb2

from services.inapp.notices import decode_notice, encode_notice, watch_keys


def _messages() -> list[inbox_pb2.InboxMessage]:
    return [
        inbox_pb2.InboxMessage(message_id="m1", user_id="u1", title="Hi"),
        inbox_pb2.InboxMessage(message_id="m2", user_id="u2", title="Hé ✓"),
    ]


def test_a_notice_carries_its_tenant_and_messages():
    tenant, messages = decode_notice(encode_notice("acme", _messages()))
    assert tenant == "acme"
    assert messages == _messages()


def test_watchers_are_keyed_by_tenant_and_user():
    keys = [key for key, _ in watch_keys(encode_notice("acme", _messages()))]
    assert keys == [("acme", "u1"), ("acme", "u2")]


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x02\x00\x00",
        b"\x01\x00\x09acme",
        encode_notice("acme", _messages()) + b"\x00\x00",
        encode_notice("acme", _messages())[:-3],
    ],
)
def test_a_broken_frame_is_refused(frame):
    with pytest.raises(ValueError):
        decode_notice(frame)
