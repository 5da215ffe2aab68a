"""The HTTP listener a channel worker opens for its provider's webhooks
(SMS keywords and receipts, email bounces and complaints), as a runtime
Component: started after the consumers, stopped before them, so every request
it accepted is published before the bus closes.

A handler answers 2xx only after what it publishes is confirmed by the
broker; when the broker does not confirm, it answers 503 and the provider
calls again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from aiohttp import web

from services.channels.settings import ChannelSettings
from shared import metrics
from shared.bus.publisher import BrokerError, Bus, Outbound
from shared.logs import get_logger
from shared.runtime import Context

log = get_logger(__name__)

# Webhook bodies are small forms or JSON documents; anything larger is not one.
MAX_BODY_BYTES = 256 * 1024


class Hooks(Protocol):
    """One channel's webhook handlers."""

    def routes(self) -> list[web.RouteDef]: ...

    async def prepare(self) -> None:
        """Anything to do before the first request (an index to create)."""


HooksFactory = Callable[[Context, ChannelSettings], Hooks]


class WebhookServer:
    def __init__(self, hooks: Hooks, host: str, port: int) -> None:
        self.hooks = hooks
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.hooks.prepare()
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes(self.hooks.routes())
        # No access log: a query string or path may carry what a log must not.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("webhooks_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def publish_or_503(bus: Bus, channel: str, outs: Sequence[Outbound]) -> None:
    """Publish with confirms; a broker that does not confirm is the provider's
    cue to call again (503), never a 2xx for something not kept."""
    try:
        await bus.publish(list(outs))
    except BrokerError as err:
        log.warning("webhook_publish_failed", channel=channel, error=err.detail)
        answered(channel, "unavailable")
        raise web.HTTPServiceUnavailable(text="try again") from None


def answered(channel: str, outcome: str) -> None:
    metrics.WEBHOOK_REQUESTS.labels(channel, outcome).inc()
