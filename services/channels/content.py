"""The content of one delivery, taken from the intent for the delivery's channel.

Pure: no I/O. Templates cannot be rendered yet (there is no template store),
so template content is a permanent failure, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import json_format
from sendmesh.intent.v1 import intent_pb2

from shared import reasons
from shared.envelopes import CHANNEL_NAMES, ChannelValue

Channel = intent_pb2.Channel

# The field of InlineContent that holds each channel's content.
INLINE_FIELDS: dict[ChannelValue, Literal["email", "sms", "webpush", "inapp"]] = {
    Channel.CHANNEL_EMAIL: "email",
    Channel.CHANNEL_SMS: "sms",
    Channel.CHANNEL_WEBPUSH: "webpush",
    Channel.CHANNEL_INAPP: "inapp",
}


@dataclass(frozen=True)
class Unrenderable:
    """Why a delivery has no content to send (a reason code and a detail)."""

    reason: str
    detail: str


def content_for(
    intent: intent_pb2.SendIntent, channel: ChannelValue
) -> dict[str, Any] | Unrenderable:
    """The channel's content as a plain dict (every field present), or why there is none."""
    source = intent.content.WhichOneof("source")
    if source == "template":
        return Unrenderable(
            reasons.TEMPLATE_NOT_FOUND,
            f"template {intent.content.template.template_id!r}: there is no template store yet",
        )
    name = INLINE_FIELDS.get(channel)
    inline = intent.content.inline
    if source != "inline" or name is None or not inline.HasField(name):
        label = CHANNEL_NAMES.get(channel, str(channel))
        return Unrenderable(reasons.NO_CONTENT, f"no inline content for channel {label}")
    content = json_format.MessageToDict(
        getattr(inline, name),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    if name == "inapp":
        content.setdefault("data", {})
    return content
