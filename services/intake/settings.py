from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service: str = "intake"
    grpc_port: int = 50051
    metrics_port: int = 9101
    # The relay is woken by every commit; this is the repair sweep after a
    # crash or a broker outage.
    outbox_poll_s: float = Field(1.0, gt=0)
    outbox_batch: int = Field(500, ge=1, le=5000)
    # Status folding is not on the delivery path: wait this long to fold
    # more events per transaction.
    events_linger_s: float = Field(0.02, ge=0, le=1)
    # The stages Explain asks (host:port).
    profile_address: str = "127.0.0.1:50052"
    eligibility_address: str = "127.0.0.1:50053"
    frequency_address: str = "127.0.0.1:50054"
    peer_timeout_s: float = Field(5.0, gt=0, le=60)
