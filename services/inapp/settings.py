from __future__ import annotations

from services.channels.settings import ChannelSettings, provider_field


class InappSettings(ChannelSettings):
    service: str = "inapp"
    grpc_port: int = 50058
    metrics_port: int = 9108
    # The inbox is the in-app channel's own provider: nothing external to call.
    provider: str = provider_field("inbox")
