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
