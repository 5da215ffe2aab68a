from __future__ import annotations

from services.channels.settings import ChannelSettings


class WebPushSettings(ChannelSettings):
    service: str = "webpush"
    grpc_port: int = 50057
    metrics_port: int = 9107
