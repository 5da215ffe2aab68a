"""Load on the mesh: intents submitted over gRPC, finished when their SENT event arrives."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc

from cli.bench.sent import SentWatcher
from cli.bench.stats import Latencies, open_loop_offsets, per_second, summarize
from cli.client import Metadata
from cli.intents import ChannelName, SendOptions, build_send_intent

SUBMIT_TIMEOUT_S = 30.0
RequestFor = Callable[[str], intake_pb2.SubmitRequest]


@dataclass
class Submissions:
    """What was submitted: intent id -> submit start (epoch seconds), and failures."""

    started_at: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    first_error: str = ""

    @property
    def done(self) -> int:
        return len(self.started_at) + self.failed


@dataclass(frozen=True)
class ThroughputResult:
    submitted: int
    sent: int
    failed: int
    seconds: float
    intents_per_s: float


@dataclass(frozen=True)
class LatencyResult:
    offered_per_s: float
    submitted: int
    failed: int
    lost: int
    latencies: Latencies


def bench_request(user_id: str) -> intake_pb2.SubmitRequest:
    """One in-app recipient, transactional (caps and quiet hours do not apply)."""
    opts = SendOptions(
        users=[user_id],
        channels=[ChannelName.inapp],
        title="bench",
        body="sendmesh bench message",
        category="bench",
    )
    return intake_pb2.SubmitRequest(intent=build_send_intent(opts))


async def open_loop(
    count: int, rate_per_s: float, send: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """`send(i)` for i in range(count), each started on its schedule at
    `rate_per_s` whether or not earlier ones finished; returns when all have."""
    tasks: list[asyncio.Task[None]] = []
    t0 = time.monotonic()
    for i, offset in enumerate(open_loop_offsets(count, rate_per_s)):
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)


class MeshLoad:
    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata, watcher: SentWatcher) -> None:
        self._stub = intake_pb2_grpc.IntakeStub(channel)
        self._metadata = metadata
        self._watcher = watcher
        # Distinct users across phases and runs, so no cap or dedup kicks in.
        self.run_id = uuid.uuid4().hex[:8]

    async def submit(
        self, user_id: str, into: Submissions, request_for: RequestFor = bench_request
    ) -> None:
        await self.submit_request(request_for(user_id), into)

    async def submit_request(self, request: intake_pb2.SubmitRequest, into: Submissions) -> None:
        started = time.time()
        try:
            reply = await self._stub.Submit(
                request, metadata=self._metadata, timeout=SUBMIT_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as err:
            into.failed += 1
            into.first_error = into.first_error or f"{err.code().name}: {err.details()}"
            return
        into.started_at[reply.intent_id] = started

    async def submit_closed_loop(
        self,
        phase: str,
        n: int,
        concurrency: int,
        subs: Submissions,
        recipient: Callable[[int], str] | None = None,
        request_for: RequestFor = bench_request,
    ) -> None:
        """n submits, `concurrency` in flight at a time; the i-th to `recipient(i)`
        (default: a user of its own)."""
        next_index = iter(range(n))
        user = recipient or (lambda i: f"{phase}-{self.run_id}-{i}")

        async def worker() -> None:
            for i in next_index:
                await self.submit(user(i), subs, request_for)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))

    async def wait_sent(self, subs: Submissions, timeout_s: float) -> int:
        """Wait until every submitted intent is SENT, or `timeout_s`; returns how many were."""
        deadline = time.monotonic() + timeout_s
        ids = subs.started_at.keys()
        while self._watcher.count_sent(ids) < len(ids) and time.monotonic() < deadline:
            await self._watcher.wait_changed(0.2)
        return self._watcher.count_sent(ids)

    async def warm_up(self, n: int, timeout_s: float, subs: Submissions) -> None:
        """First intents pay for connections and table creation: not measured."""
        await self.submit_closed_loop("warm", n, n, subs)
        await self.wait_sent(subs, timeout_s)

    async def throughput(
        self, n: int, concurrency: int, timeout_s: float, subs: Submissions
    ) -> ThroughputResult:
        """From the first submit to the last SENT event."""
        start = time.time()
        await self.submit_closed_loop("tput", n, concurrency, subs)
        sent = await self.wait_sent(subs, timeout_s)
        sent_times = [
            self._watcher.sent_at[i] for i in subs.started_at if i in self._watcher.sent_at
        ]
        seconds = max(sent_times, default=start) - start
        return ThroughputResult(
            len(subs.started_at), sent, subs.failed, seconds, per_second(sent, seconds)
        )

    async def latency(
        self, n: int, rate_per_s: float, timeout_s: float, subs: Submissions
    ) -> LatencyResult:
        """Open loop at `rate_per_s`; submit start -> SENT decision time, per intent."""
        await open_loop(n, rate_per_s, lambda i: self.submit(f"lat-{self.run_id}-{i}", subs))
        sent = await self.wait_sent(subs, timeout_s)
        latencies_ms = [
            (self._watcher.sent_at[i] - started) * 1000
            for i, started in subs.started_at.items()
            if i in self._watcher.sent_at
        ]
        return LatencyResult(
            rate_per_s,
            len(subs.started_at),
            subs.failed,
            len(subs.started_at) - sent,
            summarize(latencies_ms),
        )
