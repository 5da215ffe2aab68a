"""The content of one delivery, for the delivery's channel: the intent's inline
content, or its pinned template rendered for the recipient. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import json_format
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.templates.render import Recipient, RenderError, plain, render_part
from shared import reasons
from shared.envelopes import CHANNEL_NAMES, ChannelValue

Channel = intent_pb2.Channel

# The field of InlineContent (and the template part) that holds each channel's content.
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
    intent: intent_pb2.SendIntent,
    channel: ChannelValue,
    profile: profile_pb2.Profile | None = None,
) -> dict[str, Any] | Unrenderable:
    """The channel's content as a plain dict (every field present), or why there is none."""
    source = intent.content.WhichOneof("source")
    name = INLINE_FIELDS.get(channel)
    label = CHANNEL_NAMES.get(channel, str(channel))
    if source == "template" and name is not None:
        return _from_template(intent.content.template, name, profile or profile_pb2.Profile())
    inline = intent.content.inline
    if source != "inline" or name is None or not inline.HasField(name):
        return Unrenderable(reasons.NO_CONTENT, f"no inline content for channel {label}")
    content = json_format.MessageToDict(
        getattr(inline, name),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    if name == "inapp":
        content.setdefault("data", {})
    return content


def _from_template(
    ref: intent_pb2.TemplateRef, part: str, profile: profile_pb2.Profile
) -> dict[str, Any] | Unrenderable:
    if not ref.HasField("pinned"):
        # Intake pins every template intent at submit; one without is not ours to guess.
        return Unrenderable(
            reasons.TEMPLATE_NOT_FOUND, f"template {ref.template_id!r} was not pinned at submit"
        )
    recipient = Recipient(
        profile.user_id, profile.locale, profile.timezone, plain(profile.attributes)
    )
    try:
        rendered = render_part(ref.pinned, part, plain(ref.data), recipient, ref.locale)
    except RenderError as err:
        return Unrenderable(err.reason, err.detail)
    if rendered is None:
        version = f"{ref.template_id!r} v{ref.pinned.version}"
        return Unrenderable(reasons.NO_CONTENT, f"template {version} has no {part} part")
    return rendered.fields
