"""Settings every channel worker reads, on top of the common ones."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shared.settings import ServiceSettings


def provider_field(default: str) -> Any:
    """SENDMESH_PROVIDER: the vendor behind the channel, by its name in registry.py."""
    return Field(default, pattern=r"^[a-z][a-z0-9_-]{0,40}$")


class ChannelSettings(ServiceSettings):
    provider: str = provider_field("dev")
    # Asked right before a send whether the intent's behaviour rules match now.
    profile_address: str = "127.0.0.1:50052"

    # The provider's rate limit, per worker process (a token bucket): sends
    # per second, and how many may go at once. 0: unlimited. A burst of 0 is
    # one second's worth. Each channel's deployment sets its own.
    rate_per_s: float = Field(0.0, ge=0, le=100_000)
    rate_burst: int = Field(0, ge=0, le=100_000)

    # The HTTP listener for provider webhooks (email feedback, SMS inbound and
    # status callbacks). 0: off.
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(0, ge=0, le=65535)
    # The public base URL the provider calls (https://hooks.example.com), when
    # a proxy stands in front: signatures are made over the URL it called.
    # Empty: the URL of the request as it arrives.
    webhook_public_url: str = Field("", pattern=r"^(https?://[^\s?#]+)?$")
