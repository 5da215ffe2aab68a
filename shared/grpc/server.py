"""The gRPC server factory: our interceptors, health, reflection, TLS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared import tracing
from shared.grpc.interceptors import (
    AuthWrapping,
    MetricsWrapping,
    TracingWrapping,
    WrappingInterceptor,
)
from shared.settings import ServiceSettings

# Health name that Kubernetes liveness probes ask for: it says the process is
# alive, whatever the broker does. "" (overall) is readiness.
LIVENESS = "liveness"

AddServicer = Callable[[Any, grpc.aio.Server], None]


def create_server(
    settings: ServiceSettings,
    servicers: Sequence[tuple[AddServicer, Any, str]],
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    """Build and bind (not start) a server; returns it, its health servicer and port.

    `servicers` are (add_XServicer_to_server, servicer, full service name).
    """
    # Tracing first, so its span covers the others; absent when tracing is off.
    traced = [TracingWrapping()] if tracing.enabled() else []
    wrappings = [
        *traced,
        MetricsWrapping(),
        AuthWrapping(
            settings.api_keys,
            settings.internal_key.get_secret_value() if settings.internal_key else None,
        ),
    ]
    server = grpc.aio.server(
        interceptors=[WrappingInterceptor(wrappings)],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 30_000),
        ],
    )
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    for add, servicer, name in servicers:
        add(servicer, server)
        names.append(name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(names, server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    creds = _credentials(settings)
    port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
    return server, health_servicer, port


def _credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    pair = (settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())
    ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )
