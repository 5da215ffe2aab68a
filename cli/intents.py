"""Command-line choices -> a SendIntent. Pure: no I/O, tested on its own."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sendmesh.intent.v1 import intent_pb2


class ChannelName(StrEnum):
    inapp = "inapp"
    email = "email"
    sms = "sms"
    webpush = "webpush"


class KindName(StrEnum):
    transactional = "transactional"
    marketing = "marketing"


class StrategyName(StrEnum):
    all = "all"
    first = "first"


CHANNELS = {
    ChannelName.inapp: intent_pb2.CHANNEL_INAPP,
    ChannelName.email: intent_pb2.CHANNEL_EMAIL,
    ChannelName.sms: intent_pb2.CHANNEL_SMS,
    ChannelName.webpush: intent_pb2.CHANNEL_WEBPUSH,
}
KINDS = {
    KindName.transactional: intent_pb2.KIND_TRANSACTIONAL,
    KindName.marketing: intent_pb2.KIND_MARKETING,
}
STRATEGIES = {
    StrategyName.all: intent_pb2.STRATEGY_ALL,
    StrategyName.first: intent_pb2.STRATEGY_FIRST_AVAILABLE,
}


@dataclass(frozen=True)
class SendOptions:
    users: Sequence[str]
    channels: Sequence[ChannelName]
    title: str = ""
    body: str = ""
    subject: str = ""
    kind: KindName = KindName.transactional
    category: str = "general"
    idempotency_key: str = ""
    strategy: StrategyName = StrategyName.all


def new_idempotency_key() -> str:
    return "cli-" + uuid.uuid4().hex


def inline_content(opts: SendOptions) -> intent_pb2.InlineContent:
    """Content for exactly the channels asked for; other channels stay unset."""
    content = intent_pb2.InlineContent()
    for channel in dict.fromkeys(opts.channels):
        if channel is ChannelName.inapp:
            content.inapp.title, content.inapp.body = opts.title, opts.body
        elif channel is ChannelName.email:
            # An email needs a subject; the title is the natural one.
            content.email.subject = opts.subject or opts.title
            content.email.text = opts.body
        elif channel is ChannelName.sms:
            # SMS has no title: the body, or the title when there is no body.
            content.sms.text = opts.body or opts.title
        elif channel is ChannelName.webpush:
            content.webpush.title, content.webpush.body = opts.title, opts.body
    return content


def build_send_intent(opts: SendOptions) -> intent_pb2.SendIntent:
    """The intent the CLI submits; the server validates it field by field."""
    return intent_pb2.SendIntent(
        idempotency_key=opts.idempotency_key or new_idempotency_key(),
        category=opts.category,
        kind=KINDS[opts.kind],
        audience=intent_pb2.Audience(user_ids=list(opts.users)),
        channels=[CHANNELS[c] for c in dict.fromkeys(opts.channels)],
        strategy=STRATEGIES[opts.strategy],
        content=intent_pb2.Content(inline=inline_content(opts)),
    )
