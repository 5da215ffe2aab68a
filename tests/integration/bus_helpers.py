"""Test helpers that talk to the real broker: publish to a stage, read a queue."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from google.protobuf.message import Message

from shared.bus.publisher import Bus
from shared.bus.topology import Topology

B = TypeVar("B", bound=Bus)


async def declared(bus: B) -> B:
    """`bus` connected, its namespace's topology declared."""
    await bus.connect()
    await bus.declare()
    return bus


async def publish_to_stage(amqp_url: str, topo: Topology, stage: str, msg: Message | bytes) -> None:
    body = msg if isinstance(msg, bytes) else msg.SerializeToString()
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(topo.work_exchange, ensure=False)
        await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=stage)


async def drain(
    amqp_url: str, queue_name: str, expect: int, within: float = 10.0
) -> list[AbstractIncomingMessage]:
    """Take `expect` messages off a queue (acking them), or give up after `within` seconds."""
    conn = await aio_pika.connect(amqp_url)
    got: list[AbstractIncomingMessage] = []
    async with conn:
        channel = await conn.channel()
        queue = await channel.get_queue(queue_name, ensure=False)
        deadline = asyncio.get_running_loop().time() + within
        while len(got) < expect and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            got.append(message)
    return got


async def queue_depth(amqp_url: str, queue_name: str) -> int:
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        channel = await conn.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return int(queue.declaration_result.message_count or 0)
