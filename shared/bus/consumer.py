"""The batch consumer: decode, decide, publish with confirms, then ack.

It takes whatever is waiting (up to `batch_size`) as one batch, so an idle
stage answers at once and a busy one pays one database round trip and one
confirm wait per batch. A batch whose handler fails is split and each
message retried alone, so one poison message never holds back the others.

Failure routing, per message:
- undecodable                -> dead-letter queue at once (reason `undecodable`)
- PermanentError             -> dead-letter queue at once
- any other error            -> delay queue for the next back-off step (its
                                delay less up to RETRY_JITTER of it, never
                                below a Retry-After), then dead letters after
                                `max_attempts`
- broker trouble on publish  -> nack with requeue; nothing was acked

A handled batch is acked with one `basic.ack(multiple)` per channel, its last
delivery tag: one frame instead of one a message, for us and for the broker.
That acks every earlier unsettled delivery too, so pipelined batches settle
strictly in the order they were taken, whatever order their confirms arrive in.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared import metrics, reasons, tracing
from shared.bus.publisher import (
    ATTEMPT_HEADER,
    DEAD_AT_HEADER,
    ERROR_HEADER,
    REASON_HEADER,
    STAGE_HEADER,
    BrokerError,
    Bus,
    Outbound,
)
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger

log = get_logger(__name__)

M = TypeVar("M")
# Handled batches whose output may wait for publisher confirms at once.
PIPELINED_BATCHES = 4
Handler = Callable[[list[M]], Awaitable[list[Outbound]]]


def attempt_of(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(ATTEMPT_HEADER, 1)
    return int(value) if isinstance(value, int | str) else 1


def retry_later(
    bus: Bus,
    stage: str,
    body: bytes,
    attempt: int,
    *,
    retry_after_s: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Outbound:
    """A copy of `body` for the delay queue of its next back-off step, expiring
    after the step's delay less a random jitter (never before Retry-After)."""
    topo = bus.topology
    backoff = topo.backoff_for(attempt, retry_after_s, rand())
    return Outbound(
        topo.delay_queue(backoff.step),
        stage,
        body,
        headers={ATTEMPT_HEADER: attempt + 1},
        expiration_s=backoff.wait_s,
    )


def dead_letter(
    bus: Bus, stage: str, body: bytes, msg_type: str, attempt: int, reason: str, detail: str
) -> Outbound:
    """`body` for the stage's dead-letter queue, with why and when it ended there."""
    headers: dict[str, str | int] = {
        ATTEMPT_HEADER: attempt,
        REASON_HEADER: reason,
        ERROR_HEADER: detail[:1000],
        STAGE_HEADER: stage,
        DEAD_AT_HEADER: int(time.time() * 1000),
    }
    return Outbound("", bus.topology.dead_letter_queue(stage), body, type=msg_type, headers=headers)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BatchConsumer(Generic[M]):
    def __init__(
        self,
        bus: Bus,
        stage: str,
        decode: Callable[[bytes], M],
        handle: Handler[M],
        *,
        prefetch: int = 512,
        batch_size: int = 256,
        max_batch_bytes: int = 1_000_000,
        max_attempts: int = 8,
        linger_s: float = 0.0,
    ) -> None:
        self.bus = bus
        self.stage = stage
        self.queue_name = bus.topology.queue(stage)
        self._decode = decode
        self._handle = handle
        self._prefetch = prefetch
        self._batch_size = batch_size
        self._max_batch_bytes = max_batch_bytes
        self._max_attempts = max_attempts
        # 0 for stages on the delivery path. A consumer whose output is not
        # latency-critical (status folding) waits this long to fill a batch:
        # fewer, larger transactions for the same messages.
        self._linger_s = linger_s
        # None is the stop sentinel: everything received before it is finished.
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._in_flight = metrics.CONSUMER_IN_FLIGHT.labels(self.queue_name)
        self._window = asyncio.Semaphore(PIPELINED_BATCHES)
        self._finishing: set[asyncio.Task[None]] = set()
        # Done when the last pipelined batch, and every one before it, is settled.
        self._last_settled: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._channel = await self.bus.consume_channel(self._prefetch)
        # A passive declare, not get_queue(ensure=False): only a declared queue
        # is registered with the robust channel, and only a registered queue
        # gets its consumer back after a reconnect (aio-pika 10).
        self._queue = await self._channel.declare_queue(self.queue_name, passive=True)
        self._tag = await self._queue.consume(self._receive)
        self._task = asyncio.create_task(self._run(), name=f"consume:{self.stage}")

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        self._in_flight.inc()
        self._buffer.put_nowait(message)

    async def stop(self, grace_s: float = 20.0) -> None:
        """Stop taking messages, finish and ack what was received, then close."""
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as err:  # the channel may be gone already
                log.warning("consumer_cancel_failed", queue=self.queue_name, error=repr(err))
        if self._task is not None:
            self._buffer.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
            except TimeoutError:
                # Unacked messages go back to the queue when the channel closes.
                log.warning("consumer_drain_timeout", queue=self.queue_name)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _run(self) -> None:
        try:
            await self._consume_batches()
        finally:
            # Drained on stop: every batch handed to the broker is confirmed
            # and acked (or requeued) before the consumer says it has stopped.
            if self._finishing:
                await asyncio.gather(*self._finishing, return_exceptions=True)

    async def _consume_batches(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = await self._take_batch()
            if not batch:
                return
            start = time.perf_counter()
            try:
                headers = [m.headers for m in batch]
                with tracing.consuming(self.stage, self.queue_name, headers):
                    await self._process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch_crashed", queue=self.queue_name, size=len(batch))
                await self._settle(batch, requeue=True, outcome="requeued")
            metrics.CONSUMER_BATCH.labels(self.queue_name).observe(len(batch))
            metrics.CONSUMER_HANDLING.labels(self.queue_name).observe(time.perf_counter() - start)

    async def _take_batch(self) -> tuple[list[AbstractIncomingMessage], bool]:
        """Whatever is waiting, up to batch_size messages or max_batch_bytes of
        bodies (after lingering, if set); and whether the stop sentinel was reached."""
        first = await self._buffer.get()
        if first is None:
            return [], True
        if self._linger_s > 0 and self._buffer.qsize() < self._batch_size:
            await asyncio.sleep(self._linger_s)
        batch = [first]
        size = len(first.body)
        while (
            len(batch) < self._batch_size
            and size < self._max_batch_bytes
            and not self._buffer.empty()
        ):
            item = self._buffer.get_nowait()
            if item is None:
                return batch, True
            batch.append(item)
            size += len(item.body)
        return batch, False

    async def _process(self, batch: list[AbstractIncomingMessage]) -> None:
        decoded: list[tuple[AbstractIncomingMessage, M]] = []
        for message in batch:
            try:
                value = tracing.adopt(self._decode(message.body), message.headers)
                decoded.append((message, value))
            except Exception as err:
                await self._dead_letter(message, reasons.UNDECODABLE, repr(err))
        if not decoded:
            return
        try:
            outs = await self._handle([body for _, body in decoded])
        except Exception as err:
            if len(decoded) == 1:
                await self._fail(decoded[0][0], err)
                return
            for message, body in decoded:  # isolate the one that fails
                await self._process_alone(message, body)
            return
        await self._finish_later(outs, [m for m, _ in decoded])

    async def _finish_later(
        self, outs: list[Outbound], messages: list[AbstractIncomingMessage]
    ) -> None:
        """Publish a handled batch's output and ack it, while the next batch is
        handled: waiting for publisher confirms (a quorum queue's fsync) no
        longer stalls the stage. Handling stays in order, one batch at a time;
        at most PIPELINED_BATCHES wait for their confirms."""
        await self._window.acquire()
        before, settled = self._last_settled, asyncio.get_running_loop().create_future()
        self._last_settled = settled
        task = asyncio.create_task(self._finish(outs, messages, before, settled))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(
        self,
        outs: list[Outbound],
        messages: list[AbstractIncomingMessage],
        before: asyncio.Future[None] | None,
        settled: asyncio.Future[None],
    ) -> None:
        try:
            if await self._publish_or_requeue(outs, messages):
                if before is not None:
                    await before
                await self._ack_through(messages)
        except Exception:
            log.exception("finish_crashed", queue=self.queue_name, size=len(messages))
            await self._settle(messages, requeue=True, outcome="requeued")
        finally:
            # Done only once every earlier batch is too: a requeued batch
            # must not let a later one's multiple-ack overtake its predecessors.
            if before is None or before.done():
                _resolve(settled)
            else:
                before.add_done_callback(lambda _: _resolve(settled))
            self._window.release()

    async def _process_alone(self, message: AbstractIncomingMessage, body: M) -> None:
        try:
            outs = await self._handle([body])
        except Exception as err:
            await self._fail(message, err)
            return
        if await self._publish_or_requeue(outs, [message]):
            await self._settle([message], outcome="ok")

    async def _publish_or_requeue(
        self, outs: list[Outbound], messages: list[AbstractIncomingMessage]
    ) -> bool:
        try:
            await self.bus.publish(outs)
            return True
        except BrokerError as err:
            log.warning("publish_failed_requeue", queue=self.queue_name, error=err.detail)
            await self._settle(messages, requeue=True, outcome="requeued")
            # Back-pressure while the broker is in trouble, not a retry schedule.
            await asyncio.sleep(1.0)
            return False

    async def _fail(self, message: AbstractIncomingMessage, err: Exception) -> None:
        attempt = attempt_of(message)
        if isinstance(err, PermanentError):
            await self._dead_letter(message, err.reason, err.detail)
            return
        if attempt >= self._max_attempts:
            await self._dead_letter(message, reasons.MAX_ATTEMPTS, repr(err))
            return
        if not isinstance(err, TransientError):
            log.exception("handler_failed", queue=self.queue_name, attempt=attempt, exc_info=err)
        retry_after = err.retry_after_s if isinstance(err, TransientError) else None
        out = retry_later(self.bus, self.stage, message.body, attempt, retry_after_s=retry_after)
        if await self._publish_or_requeue([out], [message]):
            await self._settle([message], outcome="retried")

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, detail: str
    ) -> None:
        dead = dead_letter(
            self.bus,
            self.stage,
            message.body,
            message.type or "",
            attempt_of(message),
            reason,
            detail,
        )
        log.warning("dead_lettered", queue=self.queue_name, reason=reason)
        if await self._publish_or_requeue([dead], [message]):
            await self._settle([message], outcome="dead_lettered")

    async def _ack_through(self, messages: list[AbstractIncomingMessage]) -> None:
        """Ack a handled batch with one multiple-ack per channel it came on (a
        batch spans two only across a reconnect). Every earlier batch has been
        settled, and messages of this one settled alone (dead-lettered) are
        no longer outstanding, so "up to this tag" is exactly this batch."""
        last: dict[int, AbstractIncomingMessage] = {}
        for message in messages:  # in delivery order: the last has the highest tag
            last[id(message.channel)] = message
        for message in last.values():
            try:
                await message.ack(multiple=True)
            except Exception as err:
                # The channel died under us: the broker redelivers, dedup absorbs it.
                log.warning("settle_failed", queue=self.queue_name, error=repr(err))
        self._in_flight.dec(len(messages))
        metrics.CONSUMED.labels(self.queue_name, "ok").inc(len(messages))

    async def _settle(
        self, messages: list[AbstractIncomingMessage], *, outcome: str, requeue: bool = False
    ) -> None:
        for message in messages:
            try:
                if outcome == "requeued":
                    await message.nack(requeue=requeue)
                else:
                    await message.ack()
            except Exception as err:
                # The channel died under us: the broker redelivers, dedup absorbs it.
                log.warning("settle_failed", queue=self.queue_name, error=repr(err))
            self._in_flight.dec()
        metrics.CONSUMED.labels(self.queue_name, outcome).inc(len(messages))
