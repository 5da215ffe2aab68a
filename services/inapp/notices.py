"""What inapp replicas fan out to every replica's watchers: new messages and
state changes, as `sendmesh.inapp.v1.InboxEvent`s without counts (each watch
reads its user's counts when it sends one on).

The frame carries the tenant next to the events, since they have no tenant
field and a Broadcast sees only bodies:

    1 byte version | u16 tenant length | tenant (UTF-8) | (u32 length | item)*

Version 2 items are InboxEvents. Version 1 items (replicas from before state
changes were announced) are InboxMessages: read as delivered events, so a
rolling upgrade loses no live message.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from sendmesh.inapp.v1 import inbox_pb2

VERSION = 2
_MESSAGES_ONLY = 1
_HEAD = struct.Struct(">BH")
_LEN = struct.Struct(">I")


def encode_notice(tenant_id: str, events: Iterable[inbox_pb2.InboxEvent]) -> bytes:
    tenant = tenant_id.encode()
    parts = [_HEAD.pack(VERSION, len(tenant)), tenant]
    for event in events:
        body = event.SerializeToString()
        parts += [_LEN.pack(len(body)), body]
    return b"".join(parts)


def decode_notice(frame: bytes) -> tuple[str, list[inbox_pb2.InboxEvent]]:
    """The tenant and its events; ValueError on a frame that is not one."""
    if len(frame) < _HEAD.size:
        raise ValueError("truncated notice")
    version, tenant_len = _HEAD.unpack_from(frame)
    if version not in (VERSION, _MESSAGES_ONLY):
        raise ValueError(f"unknown notice version {version}")
    offset = _HEAD.size + tenant_len
    if offset > len(frame):
        raise ValueError("truncated notice")
    tenant = frame[_HEAD.size : offset].decode()
    events = []
    while offset < len(frame):
        if offset + _LEN.size > len(frame):
            raise ValueError("truncated notice")
        (size,) = _LEN.unpack_from(frame, offset)
        offset += _LEN.size
        if offset + size > len(frame):
            raise ValueError("truncated notice")
        item = frame[offset : offset + size]
        if version == _MESSAGES_ONLY:
            events.append(inbox_pb2.InboxEvent(delivered=inbox_pb2.InboxMessage.FromString(item)))
        else:
            events.append(inbox_pb2.InboxEvent.FromString(item))
        offset += size
    return tenant, events


def user_of(event: inbox_pb2.InboxEvent) -> str:
    """Whose inbox an event is about ("" for one that names nobody)."""
    kind = event.WhichOneof("event")
    if kind == "delivered":
        return event.delivered.user_id
    if kind == "changed":
        return event.changed.user_id
    return ""


def watch_keys(frame: bytes) -> list[tuple[tuple[str, str], inbox_pb2.InboxEvent]]:
    """(tenant, user) -> event pairs, for shared.bus.broadcast.Broadcast."""
    tenant, events = decode_notice(frame)
    return [((tenant, user_of(e)), e) for e in events if user_of(e)]
