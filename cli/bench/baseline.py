"""The baseline: the mesh's queue hops with bare relays and nothing else.

plan -> [relay] -> eligibility -> [relay] -> frequency -> [relay] -> send.inapp
-> final consumer (here, in the bench process, as the SENT watcher is for the
mesh). One relay process per hop, quorum queues, persistent messages,
publisher confirms, ack after the onward confirm, the mesh's prefetch. In a
namespace of its own, deleted afterwards.

Besides its throughput, the same relays are timed open loop at the rates the
mesh's latency was measured at: what the broker alone costs over those hops,
a floor no stage on top of it can go under.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, DeliveryMode
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bench.mesh_load import bench_request, open_loop
from cli.bench.relay import READY
from cli.bench.stats import Latencies, per_second, summarize
from cli.bus_admin import CONNECT_TIMEOUT_S, delete_queues
from shared.bus import topology
from shared.bus.topology import QUORUM, Topology

HOPS = (topology.PLAN, topology.ELIGIBILITY, topology.FREQUENCY, topology.send_stage("inapp"))
RELAY_START_TIMEOUT_S = 30.0
# Latency probes' message ids start so (aio-pika gives other messages ids too).
PROBE_PREFIX = "probe-"
PUBLISH_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RelayLatency:
    """Publish -> received at the end of the hops, offered open loop at a rate."""

    offered_per_s: float
    sent: int
    lost: int
    latencies: Latencies


@dataclass(frozen=True)
class BaselineResult:
    published: int
    received: int
    seconds: float
    msgs_per_s: float
    latency: tuple[RelayLatency, ...] = ()


@dataclass
class BaselineProgress:
    published: int = 0
    received: int = 0
    last_received_at: float = 0.0
    all_received: asyncio.Event = field(default_factory=asyncio.Event)
    # Latency probes: message id -> when it reached the end of the hops.
    arrived: dict[str, float] = field(default_factory=dict)
    arrival: asyncio.Event = field(default_factory=asyncio.Event)


def sample_body() -> bytes:
    """A body the size of the mesh's envelopes: one intent, one delivery."""
    request = bench_request("bench-user")
    env = envelope_pb2.Envelope(tenant_id="bench", intent_id=uuid.uuid4().hex)
    env.intent.CopyFrom(request.intent)
    env.deliveries.add(
        delivery_id=uuid.uuid4().hex, user_id="bench-user", channel=intent_pb2.CHANNEL_INAPP
    )
    return env.SerializeToString()


class Baseline:
    def __init__(self, amqp_url: str, prefetch: int) -> None:
        self._url = amqp_url
        self._prefetch = prefetch
        self._topology = Topology("benchbase" + uuid.uuid4().hex[:8])
        self.queues = [self._topology.queue(hop) for hop in HOPS]
        self._relays: list[subprocess.Popen[bytes]] = []
        self._connection: AbstractRobustConnection | None = None
        self.progress = BaselineProgress()

    async def run(
        self,
        n: int,
        concurrency: int,
        timeout_s: float,
        latency_at: Sequence[tuple[float, int]] = (),
    ) -> BaselineResult:
        """Throughput of n messages; then, for each (rate, count) of
        `latency_at`, the latency of count messages offered at that rate."""
        try:
            await self._declare()
            await self._start_relays()
            await self._consume_last(n)
            start = time.time()
            await self._publish(n, concurrency)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.all_received.wait(), timeout_s)
            seconds = (self.progress.last_received_at or time.time()) - start
            received = self.progress.received
            latency = [await self._latency(rate, count, timeout_s) for rate, count in latency_at]
            return BaselineResult(
                n, received, seconds, per_second(received, seconds), tuple(latency)
            )
        finally:
            await self._tear_down()

    async def _declare(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self._url,
            timeout=CONNECT_TIMEOUT_S,
            client_properties={"connection_name": "sendmesh-bench-baseline"},
        )
        channel = await self._connection.channel()
        for name in self.queues:
            await channel.declare_queue(name, durable=True, arguments=QUORUM)

    async def _start_relays(self) -> None:
        for source, target in zip(self.queues, self.queues[1:], strict=False):
            self._relays.append(spawn_relay(self._url, source, target, self._prefetch))
        for process in self._relays:
            await _wait_ready(process)

    async def _consume_last(self, n: int) -> None:
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.get_queue(self.queues[-1], ensure=False)
        progress = self.progress

        async def receive(message: AbstractIncomingMessage) -> None:
            now = time.time()
            await message.ack()
            probe = message.message_id or ""
            if probe.startswith(PROBE_PREFIX):
                progress.arrived[probe] = now
                progress.arrival.set()
                return
            progress.received += 1
            progress.last_received_at = now
            if progress.received >= n:
                progress.all_received.set()

        await queue.consume(receive)

    async def _publish(self, n: int, concurrency: int) -> None:
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True)
        body = sample_body()
        remaining = iter(range(n))

        async def publisher() -> None:
            for _ in remaining:
                message = aio_pika.Message(body, delivery_mode=DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(
                    message, routing_key=self.queues[0], timeout=PUBLISH_TIMEOUT_S
                )
                self.progress.published += 1

        await asyncio.gather(*(publisher() for _ in range(min(concurrency, n))))

    async def _latency(self, rate: float, count: int, timeout_s: float) -> RelayLatency:
        """`count` messages at `rate` open loop, each timed from its publish."""
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=True)
        body, started = sample_body(), {}
        probe = PROBE_PREFIX + uuid.uuid4().hex[:8]

        async def send(i: int) -> None:
            message_id = f"{probe}-{i}"
            started[message_id] = time.time()
            message = aio_pika.Message(
                body, delivery_mode=DeliveryMode.PERSISTENT, message_id=message_id
            )
            await channel.default_exchange.publish(
                message, routing_key=self.queues[0], timeout=PUBLISH_TIMEOUT_S
            )

        await open_loop(count, rate, send)
        arrived = self.progress.arrived
        deadline = time.monotonic() + timeout_s
        while any(m not in arrived for m in started) and time.monotonic() < deadline:
            self.progress.arrival.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.progress.arrival.wait(), 0.2)
        await channel.close()
        latencies = [(arrived[m] - t) * 1000 for m, t in started.items() if m in arrived]
        return RelayLatency(rate, len(started), len(started) - len(latencies), summarize(latencies))

    async def _tear_down(self) -> None:
        for process in self._relays:
            if process.poll() is None:
                process.terminate()
        for process in self._relays:
            try:
                await asyncio.to_thread(process.wait, 10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._connection is not None:
            await self._connection.close()
        await delete_queues(self._url, self.queues)


def spawn_relay(amqp_url: str, source: str, target: str, prefetch: int) -> subprocess.Popen[bytes]:
    """Start one relay process; it prints `ready` once it consumes."""
    args = [sys.executable, "-m", "cli.bench.relay", amqp_url, source, target, str(prefetch)]
    # Not the event loop's spawn: with close_fds=False Python uses posix_spawn,
    # so gRPC's fork handlers (which only log noise here) do not run. Our fds
    # are not inheritable anyway (PEP 446).
    return subprocess.Popen(args, stdout=subprocess.PIPE, close_fds=False)


async def _wait_ready(process: subprocess.Popen[bytes]) -> None:
    """The relay's first line is `ready`; a relay that dies ends its output early."""
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(
            asyncio.to_thread(process.stdout.readline), RELAY_START_TIMEOUT_S
        )
    except TimeoutError:
        line = b""
    if line.decode().strip() != READY:
        raise RuntimeError(f"a baseline relay did not start (exit code {process.poll()})")
