from __future__ import annotations

from shared.settings import ServiceSettings


class EligibilitySettings(ServiceSettings):
    service: str = "eligibility"
    grpc_port: int = 50053
    metrics_port: int = 9103
