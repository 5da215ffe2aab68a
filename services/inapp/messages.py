"""Inbox rows from outgoing messages, and rows and changes as the API's protobufs."""

from __future__ import annotations

from datetime import datetime

from google.protobuf import struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.inapp.v1 import inbox_pb2

from services.channels.provider import OutgoingMessage
from services.inapp.states import Mark, Target
from services.inapp.store import Counts, InboxMessage, NewInboxRow
from shared.clock import to_timestamp
from shared.ids import new_id


def inbox_row(message: OutgoingMessage, now: datetime, message_id: str = "") -> NewInboxRow:
    """`message_id`: one of a batch's `new_ids`; a fresh id if not given."""
    content = message.content
    return NewInboxRow(
        message_id=message_id or new_id(),
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


def to_proto(
    row: InboxMessage | NewInboxRow, created_at: Timestamp | None = None
) -> inbox_pb2.InboxMessage:
    """`created_at`: the row's time already converted, when a caller has it."""
    message = inbox_pb2.InboxMessage(
        message_id=row.message_id,
        user_id=row.user_id,
        intent_id=row.intent_id,
        category=row.category,
        title=row.title,
        body=row.body,
        action_url=row.action_url,
        created_at=created_at or to_timestamp(row.created_at),
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


CHANGE_KINDS = {
    Mark.SEEN: inbox_pb2.INBOX_CHANGE_KIND_SEEN,
    Mark.READ: inbox_pb2.INBOX_CHANGE_KIND_READ,
    Mark.UNREAD: inbox_pb2.INBOX_CHANGE_KIND_UNREAD,
    Mark.ARCHIVED: inbox_pb2.INBOX_CHANGE_KIND_ARCHIVED,
    Mark.UNARCHIVED: inbox_pb2.INBOX_CHANGE_KIND_UNARCHIVED,
}


def change_event(user_id: str, mark: Mark, target: Target, at: datetime) -> inbox_pb2.InboxEvent:
    change = inbox_pb2.InboxChange(
        user_id=user_id,
        kind=CHANGE_KINDS[mark],
        message_ids=list(target.message_ids),
        all=target.is_all,
        at=to_timestamp(at),
    )
    if target.up_to is not None:
        change.up_to.CopyFrom(to_timestamp(target.up_to))
    return inbox_pb2.InboxEvent(changed=change)


def with_counts(event: inbox_pb2.InboxEvent, counts: Counts) -> inbox_pb2.InboxEvent:
    """A copy of `event` carrying `counts` (events from the broadcast are shared)."""
    out = inbox_pb2.InboxEvent()
    out.CopyFrom(event)
    out.unread_count, out.unseen_count = counts.unread, counts.unseen
    return out
