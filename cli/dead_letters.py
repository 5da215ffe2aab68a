"""Dead-letter queues, from the CLI's side: count them, read them, replay them.

Reading must not lose a message. Quorum queues cannot be peeked, so a read
takes messages with basic.get and manual acks, holds every one unacked (so the
next get gives the next message, not the same one again) and hands them all
back with nack(requeue) at the end. A requeued message goes to the back of a
quorum queue, so a read walks the whole queue (up to MAX_READ) and requeues
it in order: the queue looks as it did, and the oldest message is known.
Each read counts as a delivery on the broker (`x-delivery-count` goes up);
dead-letter queues are declared without a delivery limit, so nothing is
dropped for it (docs/operations.md: RabbitMQ 4.0-4.2 default to a limit).

Replay publishes each message onward with publisher confirms and acks the
dead-letter copy only after the confirm: a crash in between replays it twice,
which the channel workers' dedup by delivery id absorbs. What a replay
leaves (another reason, undecodable) goes to the back of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from cli import dead_letter_model as model
from cli.bus_admin import OPERATION_TIMEOUT_S, check_answers
from cli.dead_letter_model import DeadLetter
from shared.bus.publisher import Bus, Outbound
from shared.bus.topology import Topology

# A read is held in memory and unacked until it ends: keep it bounded.
MAX_READ = 10_000


@dataclass(frozen=True)
class QueueSummary:
    stage: str
    queue: str
    count: int
    # When the message at the head was dead-lettered (the oldest, as queues are FIFO).
    oldest_at: datetime | None


@dataclass
class ReplayReport:
    replayed: list[DeadLetter] = field(default_factory=list)
    # Left in the dead-letter queue, each with why.
    kept: list[tuple[DeadLetter, str]] = field(default_factory=list)


@asynccontextmanager
async def _bus(amqp_url: str, topo: Topology, name: str) -> AsyncIterator[Bus]:
    await check_answers(amqp_url)  # a clear error in bounded time, not a hang
    bus = Bus(amqp_url, topo, name, publish_timeout_s=OPERATION_TIMEOUT_S)
    await asyncio.wait_for(bus.connect(), OPERATION_TIMEOUT_S)
    try:
        yield bus
    finally:
        await bus.close()


async def _count(bus: Bus, queue: str) -> int | None:
    """Messages in `queue`; None when it was never declared."""
    channel = await bus.consume_channel(1)  # a missing queue closes the channel it is asked on
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    except aio_pika.exceptions.ChannelClosed:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _take(channel: AbstractChannel, queue: str, limit: int) -> list[AbstractIncomingMessage]:
    """Up to `limit` messages from the head of `queue`, each held unacked."""
    source = await channel.get_queue(queue, ensure=False)
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < min(limit, MAX_READ):
        message = await source.get(no_ack=False, fail=False, timeout=OPERATION_TIMEOUT_S)
        if message is None:
            break
        taken.append(message)
    return taken


async def _give_back(messages: list[AbstractIncomingMessage]) -> None:
    """Requeue, in order. If the channel died, the broker requeued them already."""
    for message in messages:
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
            await message.nack(requeue=True)


async def overview(amqp_url: str, topo: Topology) -> list[QueueSummary]:
    """Every dead-letter queue of the namespace that exists: its count and oldest message."""
    summaries: list[QueueSummary] = []
    async with _bus(amqp_url, topo, "sendmesh-cli-dlq") as bus:
        for stage in model.dead_letter_stages(topo):
            queue = topo.dead_letter_queue(stage)
            count = await _count(bus, queue)
            if count is None:
                continue
            dates = [d.dead_at for d in await _read_all(bus, stage) if d.dead_at] if count else []
            summaries.append(QueueSummary(stage, queue, count, min(dates, default=None)))
    return summaries


async def read(amqp_url: str, topo: Topology, stage: str, limit: int) -> list[DeadLetter]:
    """The first `limit` dead letters of `stage`, all left in their queue, in order."""
    async with _bus(amqp_url, topo, "sendmesh-cli-dlq") as bus:
        return (await _read_all(bus, stage))[:limit]


async def _read_all(bus: Bus, stage: str) -> list[DeadLetter]:
    channel = await bus.consume_channel(1)
    try:
        taken = await _take(channel, bus.topology.dead_letter_queue(stage), MAX_READ)
        try:
            return [model.describe(stage, m.headers or {}, m.body, m.type or "") for m in taken]
        finally:
            await _give_back(taken)
    finally:
        if not channel.is_closed:
            await channel.close()


async def replay(
    amqp_url: str,
    topo: Topology,
    stage: str,
    *,
    limit: int,
    reason: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ReplayReport:
    """Send up to `limit` dead letters of `stage` back (see `replay_outbound`);
    with `reason`, only those dead-lettered for it. A dry run moves nothing."""
    report = ReplayReport()
    at = now or datetime.now(UTC)
    async with _bus(amqp_url, topo, "sendmesh-cli-dlq-replay") as bus:
        channel = await bus.consume_channel(1)
        kept: list[AbstractIncomingMessage] = []
        try:
            for message in await _take(channel, topo.dead_letter_queue(stage), limit):
                letter = model.describe(
                    stage, message.headers or {}, message.body, message.type or ""
                )
                why = model.why_kept(letter, reason)
                if why is not None or dry_run:
                    kept.append(message)
                    if why is not None:
                        report.kept.append((letter, why))
                    else:
                        report.replayed.append(letter)
                    continue
                await _move(bus, message, model.replay_outbound(letter, topo, at))
                report.replayed.append(letter)
        finally:
            await _give_back(kept)
            if not channel.is_closed:
                await channel.close()
    return report


async def _move(bus: Bus, message: AbstractIncomingMessage, outs: list[Outbound]) -> None:
    """Publish, wait for every confirm, then ack the dead-letter copy. If the
    broker does not confirm, the copy stays (the caller's channel close or
    this nack puts it back) and the error ends the replay."""
    try:
        await bus.publish(outs)
    except Exception:
        await message.nack(requeue=True)
        raise
    await message.ack()
