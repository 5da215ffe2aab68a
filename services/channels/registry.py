"""Which provider class serves which (channel, provider name).

Adding a vendor: write its module, its test, and add one line to BUILT_IN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels.provider import Provider
from services.channels.settings import ChannelSettings
from services.email.providers.dev import DevEmailProvider
from services.email.providers.smtp import SmtpEmailProvider
from services.email.settings import EmailSettings
from services.inapp.providers.inbox import InboxProvider
from services.sms.providers.dev import DevSmsProvider
from services.sms.providers.twilio import TwilioSmsProvider
from services.webpush.providers.dev import DevWebPushProvider
from services.webpush.providers.vapid import VapidWebPushProvider
from shared.bus.publisher import Bus
from shared.settings import SettingsError


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may be built from."""

    settings: ChannelSettings
    engine: AsyncEngine
    bus: Bus


ProviderFactory = Callable[[ProviderContext], Provider]

BUILT_IN: dict[tuple[str, str], ProviderFactory] = {
    ("email", "dev"): lambda ctx: DevEmailProvider(ctx.settings.var_dir),
    ("sms", "dev"): lambda ctx: DevSmsProvider(ctx.settings.var_dir),
    ("webpush", "dev"): lambda ctx: DevWebPushProvider(ctx.settings.var_dir),
    ("inapp", "inbox"): lambda ctx: InboxProvider(ctx.engine, ctx.bus),
    ("email", "smtp"): lambda ctx: SmtpEmailProvider.from_settings(
        cast(EmailSettings, ctx.settings)
    ),
    ("sms", "twilio"): lambda ctx: TwilioSmsProvider.from_settings(ctx.settings),
    ("webpush", "vapid"): lambda ctx: VapidWebPushProvider.from_settings(ctx.settings),
}

_registry: dict[tuple[str, str], ProviderFactory] = dict(BUILT_IN)


def register(channel: str, name: str, factory: ProviderFactory) -> None:
    """Add a provider (a plug-in, or a test's own) under (channel, name)."""
    if (channel, name) in _registry:
        raise ValueError(f"provider {name!r} is already registered for {channel}")
    _registry[(channel, name)] = factory


def unregister(channel: str, name: str) -> None:
    _registry.pop((channel, name), None)


def known(channel: str) -> list[str]:
    return sorted(name for c, name in _registry if c == channel)


def require(channel: str, name: str) -> ProviderFactory:
    """The factory for (channel, name), or a start-up error naming the choices."""
    factory = _registry.get((channel, name))
    if factory is None:
        raise SettingsError(
            f"invalid settings:\n  SENDMESH_PROVIDER: no {channel} provider {name!r}; "
            f"choose one of {', '.join(known(channel))}"
        )
    return factory
