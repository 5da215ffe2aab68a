from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class FrequencySettings(ServiceSettings):
    service: str = "frequency"
    grpc_port: int = 50054
    metrics_port: int = 9104
    # How often old reservations are deleted (seconds; 0: never).
    prune_interval_s: float = Field(3600.0, ge=0)
