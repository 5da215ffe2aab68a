"""Runs one service: database, bus, gRPC server, consumers, metrics, and a
graceful stop (NOT_SERVING, stop consuming, finish in-flight work, ack, exit).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health_pb2
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from shared import db, enums, metrics, tracing
from shared.bus.consumer import BatchConsumer, Handler
from shared.bus.publisher import Bus
from shared.bus.topology import Topology
from shared.grpc.server import LIVENESS, AddServicer, create_server
from shared.logs import configure_logging, get_logger
from shared.settings import ServiceSettings

log = get_logger(__name__)

M = TypeVar("M")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Component(Protocol):
    """Anything with a life: consumers, relays, broadcasts, group commits."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Parts:
    """What a service's wiring hands back to the runtime."""

    servicers: Sequence[tuple[AddServicer, Any, str]] = ()
    # Started in order, stopped in reverse order.
    components: Sequence[Component] = ()


@dataclass
class Context:
    """What a service's wiring gets to build its parts with."""

    settings: ServiceSettings
    bus: Bus
    engine: AsyncEngine
    extras: dict[str, Any] = field(default_factory=dict)

    def consumer(
        self,
        stage: str,
        decode: Callable[[bytes], M],
        handle: Handler[M],
        *,
        linger_s: float = 0.0,
    ) -> BatchConsumer[M]:
        """A batch consumer of `stage`, sized by this service's settings."""
        s = self.settings
        return BatchConsumer(
            self.bus,
            stage,
            decode,
            handle,
            prefetch=s.prefetch,
            batch_size=s.batch_size,
            max_batch_bytes=s.batch_max_bytes,
            max_attempts=s.max_attempts,
            linger_s=linger_s,
        )


Build = Callable[[Context], Awaitable[Parts]]


def topology_for(settings: ServiceSettings) -> Topology:
    return Topology(settings.bus_namespace, settings.retry_delays_s)


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        build: Build,
        *,
        tables: Sequence[type[SQLModel]] = (),
        control_services: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self._build = build
        self._tables = tables
        self._control_services = control_services
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._parts = Parts()
        self._started: list[Component] = []
        self._metrics_server: Any = None
        self.bus: Bus | None = None
        self.engine: AsyncEngine | None = None

    async def start(self) -> None:
        s = self.settings
        configure_logging(s.service, s.log_level, s.log_format)
        enums.bind_all()
        tracing.start(s)
        metrics.BUILD_INFO.info({"version": _version(), "service": s.service})
        self._metrics_server = metrics.serve_metrics(s.metrics_host, s.metrics_port)
        self.engine = db.create_engine(s.resolved_database_url())
        await db.create_tables(self.engine, self._tables)
        self.bus = Bus(
            s.amqp_url.get_secret_value(),
            topology_for(s),
            f"sendmesh-{s.service}",
            s.publish_timeout_s,
        )
        await self.bus.connect()
        await self.bus.declare(self._control_services)
        self._parts = await self._build(Context(s, self.bus, self.engine))
        self._server, self._health, self.port = create_server(s, self._parts.servicers)
        await self._server.start()
        for component in self._parts.components:
            await component.start()
            self._started.append(component)
        self._watch_broker()
        await self._health.set(LIVENESS, SERVING)
        await self._set_ready(True)
        log.info("service_started", grpc_port=self.port, metrics_port=s.metrics_port)

    def _watch_broker(self) -> None:
        """Readiness follows the broker connection; liveness does not."""
        conn = self.bus.connection if self.bus else None
        if conn is None:
            return
        conn.close_callbacks.add(lambda *_: asyncio.ensure_future(self._set_ready(False)))
        conn.reconnect_callbacks.add(lambda *_: asyncio.ensure_future(self._set_ready(True)))

    async def _set_ready(self, ready: bool) -> None:
        if self._health is None:
            return
        status = SERVING if ready else NOT_SERVING
        await self._health.set("", status)
        for _, _, name in self._parts.servicers:
            await self._health.set(name, status)

    async def stop(self, *, not_serving_s: float = 0.0) -> None:
        """NOT_SERVING; stop consuming and finish the batches in hand; let the
        gRPC calls in flight finish while the parts they use still run (intake's
        group commit); then stop those parts. All within one shutdown grace.

        The server keeps answering, NOT_SERVING, for at least `not_serving_s`
        (while the consumers drain) before it refuses calls."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace_s

        def left() -> float:
            return max(deadline - loop.time(), 0.0)

        log.info("service_stopping")
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        consumers = [c for c in self._started if isinstance(c, BatchConsumer)]
        await asyncio.gather(
            asyncio.sleep(min(not_serving_s, left())),
            *(_bounded(c.stop(left()), left() + MIN_STEP_S, "consumer") for c in consumers),
        )
        if self._server is not None:
            await self._server.stop(left())
        for component in reversed(self._started):
            if component not in consumers:
                step = max(left(), MIN_STEP_S)
                await _bounded(component.stop(), step, type(component).__name__)
        self._started.clear()
        if self.bus is not None:
            # A broker that stopped answering must not keep us from exiting.
            await _bounded(self.bus.close(), BROKER_CLOSE_S, "bus")
        if self.engine is not None:
            await db.dispose(self.engine)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        tracing.stop(self.settings)  # flushes the spans not exported yet
        log.info("service_stopped")

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop(not_serving_s=NOT_SERVING_S)


BROKER_CLOSE_S = 5.0
# A signalled process answers NOT_SERVING at least this long before refusing
# calls, so that a client watching health (gRPC client-side health checking, a
# proxy's health check) moves its calls elsewhere first. It overlaps the
# consumers' drain: it costs nothing when there is work to finish.
NOT_SERVING_S = 1.0
# Each part still gets this long to close once the grace is spent (a consumer
# that ran out of it closes its channel; the parts after a gRPC server held
# to the end of it by a watch stream still close theirs).
MIN_STEP_S = 1.0


async def _bounded(step: Awaitable[None], seconds: float, what: str) -> None:
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        log.warning("stop_timed_out", component=what, seconds=seconds)
    except Exception:
        log.exception("stop_failed", component=what)


def run(runtime: ServiceRuntime) -> None:
    """The body of every `python -m services.<name>`."""
    import uvloop

    uvloop.run(runtime.run_until_signalled())


def _version() -> str:
    try:
        return version("sendmesh")
    except PackageNotFoundError:
        return "dev"
