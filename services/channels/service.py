"""Wiring shared by the channel workers: a send consumer, a cancellation
consumer, the provider named by settings (behind its rate limit), the
provider's webhooks when the channel has any, and the runtime around them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from sqlmodel import SQLModel

from services.channels import registry, store
from services.channels.cancellations import CancellationRecorder, OnErased, decode_control
from services.channels.provider import Provider, close_provider
from services.channels.ratelimit import bucket_for
from services.channels.recheck import BehaviourRecheck
from services.channels.registry import ProviderContext
from services.channels.settings import ChannelSettings
from services.channels.webhooks import HooksFactory, WebhookServer
from services.channels.worker import ChannelWorker
from services.email.webhook import EmailWebhook
from services.sms.webhook import SmsWebhook
from shared.bus import topology
from shared.envelopes import decode_envelope
from shared.runtime import Component, Context, Parts, ServiceRuntime

# Adds a service's own API and components around the worker's consumers.
Extend = Callable[[Context, list[Component]], Awaitable[Parts]]

# The channels whose providers call back, served on SENDMESH_WEBHOOK_PORT.
WEBHOOKS: dict[str, HooksFactory] = {
    "email": EmailWebhook.from_context,
    "sms": SmsWebhook.from_context,
}


class ProviderLifetime:
    """Started first, stopped last: the provider closes after the last send."""

    def __init__(self, provider: Provider, recheck: BehaviourRecheck) -> None:
        self.provider = provider
        self.recheck = recheck

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await close_provider(self.provider)
        await self.recheck.close()


def worker_components(
    ctx: Context, settings: ChannelSettings, channel: str, on_erased: OnErased | None = None
) -> list[Component]:
    """The provider's lifetime, the cancellation consumer and the send consumer, in start order."""
    factory = registry.require(channel, settings.provider)
    provider = factory(ProviderContext(settings, ctx.engine, ctx.bus))
    recheck = BehaviourRecheck(settings)
    bucket = bucket_for(settings.rate_per_s, settings.rate_burst)
    worker = ChannelWorker(
        ctx.bus, ctx.engine, provider, channel, settings.max_attempts, recheck, bucket
    )
    cancellations = ctx.consumer(
        topology.control_stage(settings.service),
        decode_control,
        CancellationRecorder(ctx.engine, on_erased).handle,
    )
    sends = ctx.consumer(topology.send_stage(channel), decode_envelope, worker.handle)
    components: list[Component] = [ProviderLifetime(provider, recheck), cancellations, sends]
    hooks = WEBHOOKS.get(channel)
    if hooks is not None and settings.webhook_port:
        # Last to start, first to stop: nothing it accepts outlives the bus.
        server = WebhookServer(hooks(ctx, settings), settings.webhook_host, settings.webhook_port)
        components.append(server)
    return components


async def _worker_only(_ctx: Context, components: list[Component]) -> Parts:
    return Parts(components=components)


def create_worker_runtime(
    settings: ChannelSettings,
    channel: str,
    *,
    extend: Extend = _worker_only,
    tables: Sequence[type[SQLModel]] = (),
    on_erased: OnErased | None = None,
) -> ServiceRuntime:
    """A channel worker service; `extend` adds its gRPC API (inapp's inbox)."""
    registry.require(channel, settings.provider)  # fail at start-up, not on the first message

    async def build(ctx: Context) -> Parts:
        return await extend(ctx, worker_components(ctx, settings, channel, on_erased))

    return ServiceRuntime(
        settings,
        build,
        tables=[*store.TABLES, *tables],
        control_services=(settings.service,),
    )
