from __future__ import annotations

from services.channels.settings import ChannelSettings


class EmailSettings(ChannelSettings):
    service: str = "email"
    grpc_port: int = 50055
    metrics_port: int = 9105
