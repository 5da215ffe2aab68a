"""Protos -> plain rows (for --json) and rich tables (for people)."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from rich.table import Table
from rich.text import Text
from sendmesh.inapp.v1 import inbox_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

Row = dict[str, Any]


def enum_label(enum: Any, value: int, prefix: str) -> str:
    """`DELIVERY_STATE_SENT` -> `sent`."""
    return str(enum.Name(value)).removeprefix(prefix).lower()


def state_label(state: int) -> str:
    return enum_label(intent_pb2.DeliveryState, state, "DELIVERY_STATE_")


def channel_label(channel: int) -> str:
    return enum_label(intent_pb2.Channel, channel, "CHANNEL_")


def intent_state_label(state: int) -> str:
    return enum_label(intake_pb2.IntentState, state, "INTENT_STATE_")


def iso_time(ts: Timestamp) -> str:
    """ISO 8601 in UTC, or "" for an unset timestamp."""
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    return ts.ToDatetime().isoformat(timespec="milliseconds") + "Z"


def time_of_day(iso: str) -> str:
    """`2026-11-23T05:43:21.796Z` -> `05:43:21.796`: tables show the date once, in the title."""
    return iso[11:23]


def delivery_row(d: intake_pb2.DeliveryStatus) -> Row:
    return {
        "delivery_id": d.delivery_id,
        "user_id": d.user_id,
        "channel": channel_label(d.channel),
        "state": state_label(d.current.state),
        "reason": d.current.reason,
        "stage": d.current.stage,
        "at": iso_time(d.current.at),
    }


def intent_row(intent: intake_pb2.Intent) -> Row:
    return {
        "intent_id": intent.intent_id,
        "state": intent_state_label(intent.state),
        "accepted_at": iso_time(intent.accepted_at),
        "updated_at": iso_time(intent.updated_at),
        "deliveries": [delivery_row(d) for d in intent.deliveries],
    }


def update_row(update: intake_pb2.IntentUpdate) -> Row:
    row: Row = {"intent_id": update.intent_id, "state": intent_state_label(update.state)}
    if update.HasField("delivery"):
        row["delivery"] = delivery_row(update.delivery)
    return row


def inbox_state(m: inbox_pb2.InboxMessage) -> str:
    """`new`, `seen` or `read` (read implies seen), then `, archived` if it is."""
    state = "read" if m.HasField("read_at") else "seen" if m.HasField("seen_at") else "new"
    return f"{state}, archived" if m.HasField("archived_at") else state


def inbox_row(m: inbox_pb2.InboxMessage) -> Row:
    return {
        "message_id": m.message_id,
        "intent_id": m.intent_id,
        "category": m.category,
        "title": m.title,
        "body": m.body,
        "action_url": m.action_url,
        "created_at": iso_time(m.created_at),
        "state": inbox_state(m),
        "seen_at": iso_time(m.seen_at),
        "read_at": iso_time(m.read_at),
        "archived_at": iso_time(m.archived_at),
    }


def inbox_view(user_id: str, reply: inbox_pb2.ListInboxResponse, status: str = "all") -> Row:
    return {
        "user_id": user_id,
        "status": status,
        "unread_count": reply.unread_count,
        "unseen_count": reply.unseen_count,
        "messages": [inbox_row(m) for m in reply.messages],
        "next_page_token": reply.next_page_token,
    }


STATE_STYLES = {"sent": "green", "pending": "yellow", "scheduled": "cyan"}


def deliveries_table(rows: list[Row], title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left")
    for column in ("user", "channel", "state", "reason", "stage", "time (UTC)"):
        table.add_column(column)
    for r in rows:
        state = Text(r["state"], style=STATE_STYLES.get(r["state"], "red"))
        table.add_row(
            *_plain(r["user_id"], r["channel"]), state, *_plain(r["reason"], r["stage"], r["at"])
        )
    return table


INBOX_STATE_STYLES = {"new": "bold", "seen": "", "read": "dim"}


def inbox_table(view: Row) -> Table:
    shown = "" if view.get("status", "all") == "all" else f" ({view['status']} shown)"
    title = (
        f"inbox of {view['user_id']}: {view['unread_count']} unread, "
        f"{view['unseen_count']} unseen{shown}"
    )
    table = Table(title=title, title_justify="left")
    for column in ("id", "received (UTC)", "state", "title", "body"):
        table.add_column(column)
    for m in view["messages"]:
        received = m["created_at"].replace("T", " ")[:19]
        style = INBOX_STATE_STYLES.get(m["state"].split(",")[0], "")
        state = Text(m["state"], style=style)
        table.add_row(*_plain(m["message_id"], received), state, *_plain(m["title"], m["body"]))
    return table


def _plain(*values: str) -> list[Text]:
    # Text, not str: user ids, titles and bodies must not be read as rich markup.
    return [Text(v) for v in values]
