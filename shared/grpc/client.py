"""The gRPC client factory: every call one of the mesh's services makes to
another (intake's Explain, a channel worker's last look at profile) goes
through `open_channel`.

- TLS when SENDMESH_TLS_SERVER_CA_FILE is set: the server's certificate must
  chain to that CA and name the host of the address (`profile` for
  `profile:50052`); the service's own SENDMESH_TLS_CERT_FILE/KEY_FILE go as
  the client certificate, for servers that require one (mTLS).
- Retries in the channel's service config: UNAVAILABLE only (nothing reached
  the server, or it was going away), a few attempts with back-off, and a
  deadline for any call that gives none.
- With tracing on, a CLIENT span per call whose W3C context goes out in the
  call's metadata, so the callee's SERVER span is its child.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.trace import Span

from shared import tracing
from shared.settings import ServiceSettings

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_ATTEMPTS = 3


def service_config(timeout_s: float = DEFAULT_TIMEOUT_S, attempts: int = DEFAULT_ATTEMPTS) -> str:
    """A service config for every method of a channel: UNAVAILABLE retried
    with back-off (`attempts` in all), and `timeout_s` as the deadline of a
    call that sets none. The deadline bounds the retries too."""
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],
                    "timeout": f"{timeout_s:g}s",
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.5s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


SERVICE_CONFIG = service_config()


def open_channel(
    address: str, settings: ServiceSettings, *, service_config: str = SERVICE_CONFIG
) -> grpc.aio.Channel:
    """A channel to another of the mesh's services at `address` (host:port)."""
    options = [("grpc.service_config", service_config), ("grpc.keepalive_time_ms", 60_000)]
    # Like the server's: absent when tracing is off, so a call pays nothing.
    interceptors = tracing_interceptors() if tracing.enabled() else []
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def channel_credentials(settings: ServiceSettings) -> grpc.ChannelCredentials | None:
    """TLS credentials from the settings; None: plain text."""
    if settings.tls_server_ca_file is None:
        return None
    ca = settings.tls_server_ca_file.read_bytes()
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=settings.tls_key_file.read_bytes(),
        certificate_chain=settings.tls_cert_file.read_bytes(),
    )


def tracing_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """One per call type: a channel files each interceptor under the first
    type it is an instance of, so one object cannot serve both."""
    return [TracingUnaryInterceptor(), TracingStreamInterceptor()]


class TracingUnaryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span around each unary call, its context sent in the metadata."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        span = tracing.client_span(_method(client_call_details))
        try:
            call = await continuation(_traced(client_call_details, span), request)
            # The caller awaits the same call for its answer; this only waits with it.
            code = await call.code()
        except BaseException:
            _end(span, None)
            raise
        _end(span, code)
        return call


class TracingStreamInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    """A CLIENT span from the start of a server-streaming call to its end."""

    def __init__(self) -> None:
        # Span endings not run yet: the loop keeps only weak references to tasks.
        self._endings: set[asyncio.Task[None]] = set()

    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        span = tracing.client_span(_method(client_call_details))
        try:
            call = await continuation(_traced(client_call_details, span), request)
        except BaseException:
            _end(span, None)
            raise
        # The stream outlives this method: the span ends with the call.
        call.add_done_callback(lambda done: self._end_later(span, done))
        return call

    def _end_later(self, span: Span | None, call: Any) -> None:
        task = asyncio.ensure_future(_finish(span, call))
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)


async def _finish(span: Span | None, call: Any) -> None:
    _end(span, await call.code())


def _end(span: Span | None, code: grpc.StatusCode | None) -> None:
    """End the span with the call's status (None: the call never got one)."""
    if span is None:
        return
    if code is not None:
        tracing.rpc_finished(span, code.name, code.value[0], client=True)
    span.end()


def _method(details: grpc.aio.ClientCallDetails) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


def _traced(details: grpc.aio.ClientCallDetails, span: Span | None) -> grpc.aio.ClientCallDetails:
    if span is None:
        return details
    metadata = grpc.aio.Metadata(*tracing.inject_metadata(details.metadata, span))
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
    )
