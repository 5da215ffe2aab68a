"""python -m services.email"""

from __future__ import annotations

from services.channels.service import create_worker_runtime
from services.email.settings import EmailSettings
from shared.runtime import ServiceRuntime, run
from shared.settings import load_settings

CHANNEL = "email"


def create_runtime(settings: EmailSettings) -> ServiceRuntime:
    # No gRPC API of its own yet: health and reflection only.
    return create_worker_runtime(settings, CHANNEL)


if __name__ == "__main__":
    run(create_runtime(load_settings(EmailSettings)))
