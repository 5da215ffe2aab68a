from __future__ import annotations

from shared.settings import ServiceSettings


class FrequencySettings(ServiceSettings):
    service: str = "frequency"
    grpc_port: int = 50054
    metrics_port: int = 9104
