"""Helpers for channel worker tests: envelopes, test providers, and waiting on
the real broker and the real metrics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from services.channels import registry
from services.channels.provider import OutgoingMessage, SendResult, permanent, sent, transient
from shared import envelopes
from shared.clock import now_timestamp
from shared.envelopes import CHANNELS_BY_NAME

State = intent_pb2.DeliveryState


def envelope(
    channel: str, users: Sequence[str] = ("u1",), tenant: str = "acme", intent_id: str = ""
) -> envelope_pb2.Envelope:
    """An envelope as frequency sends it: allowed so far, content for every channel."""
    env = envelope_pb2.Envelope(tenant_id=tenant, intent_id=intent_id or f"i-{uuid.uuid4().hex}")
    env.accepted_at.CopyFrom(now_timestamp())
    env.intent.category = "cart_reminder"
    inline = env.intent.content.inline
    inline.email.subject = "Your cart"
    inline.email.text = "You left something"
    inline.sms.text = "Your cart is waiting"
    inline.webpush.title = "Cart"
    inline.inapp.title = "Your cart"
    inline.inapp.body = "You left something"
    inline.inapp.action_url = "https://shop.example/cart"
    for user in users:
        delivery = env.deliveries.add(
            delivery_id=f"{env.intent_id}-{user}-{channel}",
            user_id=user,
            channel=CHANNELS_BY_NAME[channel],
        )
        for stage in ("eligibility", "frequency"):
            delivery.decisions.append(
                envelopes.decision(stage, State.DELIVERY_STATE_PENDING, "allowed")
            )
        profile = env.profiles[user]
        profile.user_id = user
        profile.contacts.email = f"{user}@example.com"
        profile.contacts.phone = "+431234567"
    return env


class ScriptedProvider:
    """A real provider whose answers follow a script, one entry per call:
    "sent", "transient" or "permanent"; the last entry repeats."""

    name = "scripted"

    def __init__(self, *script: str) -> None:
        self.script = list(script) or ["sent"]
        self.calls: list[list[str]] = []

    @property
    def sent_ids(self) -> list[str]:
        done = [ids for i, ids in enumerate(self.calls) if self._step(i) == "sent"]
        return [d for ids in done for d in ids]

    def _step(self, call: int) -> str:
        return self.script[min(call, len(self.script) - 1)]

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        step = self._step(len(self.calls))
        self.calls.append([m.delivery_id for m in messages])
        answer: Callable[[str], SendResult] = {
            "sent": lambda d: sent(d, f"p-{d}"),
            "transient": lambda d: transient(d, "provider_error", "503 from vendor"),
            "permanent": lambda d: permanent(d, "provider_error", "400 invalid recipient"),
        }[step]
        return [answer(m.delivery_id) for m in messages]


@contextmanager
def provider_registered(channel: str, provider: ScriptedProvider) -> Iterator[str]:
    """Register `provider` under a fresh name for the block; yields the name."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    registry.register(channel, name, lambda _ctx: provider)
    try:
        yield name
    finally:
        registry.unregister(channel, name)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consumed(queue: str) -> float:
    """Messages the consumer of `queue` finished with (acked after publishing its output)."""
    return sum(
        sample("sendmesh_consumer_messages_total", queue=queue, outcome=o)
        for o in ("ok", "retried", "dead_lettered")
    )


async def eventually(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def take_all(amqp_url: str, queue_name: str) -> list[AbstractIncomingMessage]:
    """Every message waiting in a queue now (acked)."""
    conn = await aio_pika.connect(amqp_url)
    got: list[AbstractIncomingMessage] = []
    async with conn:
        channel = await conn.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append(message)
    return got


def events_of(messages: Sequence[AbstractIncomingMessage]) -> list[envelope_pb2.DeliveryEvent]:
    return [e for m in messages for e in envelope_pb2.EventBatch.FromString(m.body).events]


async def publish_event(amqp_url: str, exchange: str, key: str, body: bytes) -> None:
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        target = await channel.get_exchange(exchange, ensure=False)
        await target.publish(aio_pika.Message(body, delivery_mode=2), routing_key=key)
