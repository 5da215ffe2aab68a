"""What the inbox provider fans out to every inapp replica's watchers.

The frame carries the tenant next to the InboxMessage protobufs, since the
message type itself has no tenant field and a Broadcast sees only bodies:

    1 byte version | u16 tenant length | tenant (UTF-8) | (u32 length | InboxMessage)*
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from sendmesh.inapp.v1 import inbox_pb2

VERSION = 1
_HEAD = struct.Struct(">BH")
_LEN = struct.Struct(">I")


def encode_notice(tenant_id: str, messages: Iterable[inbox_pb2.InboxMessage]) -> bytes:
    tenant = tenant_id.encode()
    parts = [_HEAD.pack(VERSION, len(tenant)), tenant]
    for message in messages:
        body = message.SerializeToString()
        parts += [_LEN.pack(len(body)), body]
    return b"".join(parts)


def decode_notice(frame: bytes) -> tuple[str, list[inbox_pb2.InboxMessage]]:
    """The tenant and its new messages; ValueError on a frame that is not one."""
    if len(frame) < _HEAD.size:
        raise ValueError("truncated notice")
    version, tenant_len = _HEAD.unpack_from(frame)
    if version != VERSION:
        raise ValueError(f"unknown notice version {version}")
    offset = _HEAD.size + tenant_len
    if offset > len(frame):
        raise ValueError("truncated notice")
    tenant = frame[_HEAD.size : offset].decode()
    messages = []
    while offset < len(frame):
        if offset + _LEN.size > len(frame):
            raise ValueError("truncated notice")
        (size,) = _LEN.unpack_from(frame, offset)
        offset += _LEN.size
        if offset + size > len(frame):
            raise ValueError("truncated notice")
        messages.append(inbox_pb2.InboxMessage.FromString(frame[offset : offset + size]))
        offset += size
    return tenant, messages


def watch_keys(frame: bytes) -> list[tuple[tuple[str, str], inbox_pb2.InboxMessage]]:
    """(tenant, user) -> message pairs, for shared.bus.broadcast.Broadcast."""
    tenant, messages = decode_notice(frame)
    return [((tenant, m.user_id), m) for m in messages]
