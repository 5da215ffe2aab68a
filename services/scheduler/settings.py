from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    service: str = "scheduler"
    grpc_port: int = 50059
    metrics_port: int = 9109
    # How often the dispatcher looks for due rows it was not told about (rows
    # stored by another replica, or left by a previous process). Rows this
    # process stores wake it at their due time, whatever this says.
    dispatch_poll_s: float = Field(0.25, gt=0, le=60)
    # Envelopes put back (or cancelled) per transaction.
    dispatch_batch: int = Field(500, ge=1, le=5000)
    # How long a cancelled intent is remembered, so that a deferral of it
    # still in flight at the cancel is cancelled on arrival, not stored.
    cancelled_retention_s: float = Field(7 * 86400.0, gt=0)
