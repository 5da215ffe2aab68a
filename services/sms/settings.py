from __future__ import annotations

from services.channels.settings import ChannelSettings


class SmsSettings(ChannelSettings):
    service: str = "sms"
    grpc_port: int = 50056
    metrics_port: int = 9106
