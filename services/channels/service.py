"""Wiring shared by the channel workers: a send consumer, a cancellation
consumer, the provider named by settings, and the runtime around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlmodel import SQLModel

from services.channels import registry, store
from services.channels.cancellations import CancellationRecorder, decode_cancelled
from services.channels.provider import Provider, close_provider
from services.channels.registry import ProviderContext
from services.channels.settings import ChannelSettings
from services.channels.worker import ChannelWorker
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Component, Context, Parts, ServiceRuntime

# Adds a service's own API and components around the worker's consumers.
Extend = Callable[[Context, list[Component]], Awaitable[Parts]]


class ProviderLifetime:
    """Started first, stopped last: the provider closes after the last send."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await close_provider(self.provider)


def worker_components(ctx: Context, settings: ChannelSettings, channel: str) -> list[Component]:
    """The provider's lifetime, the cancellation consumer and the send consumer, in start order."""
    factory = registry.require(channel, settings.provider)
    provider = factory(ProviderContext(settings, ctx.engine, ctx.bus))
    worker = ChannelWorker(ctx.bus, ctx.engine, provider, channel, settings.max_attempts)
    cancellations = ctx.consumer(
        topology.control_stage(settings.service),
        decode_cancelled,
        CancellationRecorder(ctx.engine).handle,
    )
    sends = ctx.consumer(topology.send_stage(channel), decode_envelope, worker.handle)
    return [ProviderLifetime(provider), cancellations, sends]


async def _worker_only(_ctx: Context, components: list[Component]) -> Parts:
    return Parts(components=components)


def create_worker_runtime(
    settings: ChannelSettings,
    channel: str,
    *,
    extend: Extend = _worker_only,
    tables: Sequence[type[SQLModel]] = (),
) -> ServiceRuntime:
    """A channel worker service; `extend` adds its gRPC API (inapp's inbox)."""
    registry.require(channel, settings.provider)  # fail at start-up, not on the first message

    async def build(ctx: Context) -> Parts:
        return await extend(ctx, worker_components(ctx, settings, channel))

    return ServiceRuntime(
        settings,
        build,
        tables=[*store.TABLES, *tables],
        control_services=(settings.service,),
    )
