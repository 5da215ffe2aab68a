"""Inbox rows from outgoing messages, and rows as the API's protobufs."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import struct_pb2
from sendmesh.inapp.v1 import inbox_pb2

from services.channels.provider import OutgoingMessage
from services.inapp.store import InboxMessage
from shared.clock import to_timestamp
from shared.ids import new_id


def inbox_row(message: OutgoingMessage, now: datetime) -> InboxMessage:
    content = message.content
    return InboxMessage(
        message_id=new_id(),
        tenant_id=message.tenant_id,
        user_id=message.user_id,
        delivery_id=message.delivery_id,
        intent_id=message.intent_id,
        category=message.category,
        title=str(content.get("title", "")),
        body=str(content.get("body", "")),
        action_url=str(content.get("action_url", "")),
        data=dict(content.get("data") or {}),
        created_at=now,
    )


def to_proto(row: InboxMessage) -> inbox_pb2.InboxMessage:
    message = inbox_pb2.InboxMessage(
        message_id=row.message_id,
        user_id=row.user_id,
        intent_id=row.intent_id,
        category=row.category,
        title=row.title,
        body=row.body,
        action_url=row.action_url,
        created_at=to_timestamp(row.created_at),
    )
    if row.data:
        data = struct_pb2.Struct()
        data.update(row.data)
        message.data.CopyFrom(data)
    for name in ("seen_at", "read_at", "archived_at"):
        value = getattr(row, name)
        if value is not None:
            getattr(message, name).CopyFrom(to_timestamp(value))
    return message
