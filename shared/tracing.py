"""OpenTelemetry traces, off unless SENDMESH_TRACING_ENABLED.

Off, nothing is built: no provider, no exporter, and every helper here
returns at once. On, one tracer per process (services run in one test
process share it), and the W3C trace context travels with the work:

- gRPC: a SERVER span per call, continuing the caller's `traceparent`; a
  CLIENT span per call one service makes to another (shared/grpc/client.py),
  whose context goes out in the call's metadata.
- AMQP: every publish is a PRODUCER span whose context goes out in the
  message headers; every consumed batch is one CONSUMER span linked to each
  message's context (a child of it when the batch is one message).
- Envelopes also carry the context in `trace_context`: it survives the hops
  where headers are lost (intake's outbox table, the scheduler's store), and
  it lets a batch handler's onward publish of each message be a child of
  that message's producer, not of the batch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from sendmesh.bus.v1 import envelope_pb2

from shared.settings import ServiceSettings

T = TypeVar("T")
Headers = Mapping[str, object] | None
Attributes = dict[str, AttributeValue]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
ENVELOPE_TYPE = envelope_pb2.Envelope.DESCRIPTOR.full_name
# gRPC codes that mean the server failed (OTel's semantic conventions); the
# others are the caller's doing and leave the span's status unset.
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

_PROPAGATOR = TraceContextTextMapPropagator()
_NOTHING: AbstractContextManager[None] = contextlib.nullcontext()
# The consumed batch being handled: (tenant, intent) -> its message's context.
_BATCH: ContextVar[dict[tuple[str, str], Context] | None] = ContextVar(
    "sendmesh_trace_batch", default=None
)


@dataclass
class _Tracing:
    provider: TracerProvider
    tracer: Tracer
    # Built here from settings, so flushed and shut down here.
    owned: bool
    users: int = 0


_current: _Tracing | None = None


# -- life ---------------------------------------------------------------------


def enabled() -> bool:
    return _current is not None


def start(settings: ServiceSettings) -> None:
    """Set tracing up for a service starting in this process (if its settings
    turn it on); a provider already set up is shared, not replaced."""
    global _current
    if not settings.tracing_enabled:
        return
    if _current is None:
        provider = build_provider(settings)
        _current = _Tracing(provider, provider.get_tracer("sendmesh"), owned=True)
    _current.users += 1


def stop(settings: ServiceSettings) -> None:
    """The service is stopping: the last one out flushes and closes the exporter."""
    global _current
    if not settings.tracing_enabled or _current is None:
        return
    _current.users -= 1
    if _current.users <= 0 and _current.owned:
        _current.provider.shutdown()
        _current = None


def install(provider: TracerProvider) -> None:
    """Use `provider` for every service of this process (tests, embedding)."""
    global _current
    _current = _Tracing(provider, provider.get_tracer("sendmesh"), owned=False)


def uninstall() -> None:
    global _current
    _current = None


def build_provider(settings: ServiceSettings) -> TracerProvider:
    resource = Resource.create({"service.name": settings.service})
    sampler = ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(build_exporter(settings)))
    return provider


def build_exporter(settings: ServiceSettings) -> SpanExporter:
    kind = settings.tracing_exporter
    if kind == "file":
        return JsonLinesExporter(trace_file(settings))
    if kind == "console":
        import sys

        return ConsoleSpanExporter(out=sys.stderr, formatter=_one_line)
    # Imported here: the gRPC exporter is the heaviest import of the lot.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    endpoint = settings.tracing_endpoint
    return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))


def trace_file(settings: ServiceSettings) -> Path:
    if settings.tracing_file is not None:
        return settings.tracing_file
    return settings.var_dir / "traces" / f"{settings.service}.jsonl"


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines appended to a file: for tests and local debugging."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.writelines(_one_line(span) for span in spans)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# -- carrying the context -------------------------------------------------------


def context_from(carrier: Headers) -> Context | None:
    """The remote context in W3C headers, or None if they hold none valid."""
    if not carrier:
        return None
    parent = carrier.get(TRACEPARENT)
    if not isinstance(parent, str):
        return None
    fields = {TRACEPARENT: parent}
    state = carrier.get(TRACESTATE)
    if isinstance(state, str):
        fields[TRACESTATE] = state
    ctx = _PROPAGATOR.extract(fields)
    return ctx if get_current_span(ctx).get_span_context().is_valid else None


def current_carrier() -> dict[str, str]:
    """The current span's context as W3C fields; empty when tracing is off."""
    if _current is None:
        return {}
    fields: dict[str, str] = {}
    _PROPAGATOR.inject(fields)
    return fields


def adopt(body: T, headers: Headers) -> T:
    """A consumed message: an envelope takes the context its headers carried
    (kept if it is stored, copied if it is republished whole), and the batch
    being handled remembers it for the envelope's onward publishes."""
    if _current is None or not isinstance(body, envelope_pb2.Envelope):
        return body
    ctx = context_from(headers)
    if ctx is not None:
        body.trace_context.clear()
        body.trace_context.update(_fields(headers))
    else:
        ctx = context_from(body.trace_context)
    batch = _BATCH.get()
    if ctx is not None and batch is not None:
        batch[(body.tenant_id, body.intent_id)] = ctx
    return body


def _fields(headers: Headers) -> dict[str, str]:
    return {k: v for k in (TRACEPARENT, TRACESTATE) if isinstance(v := (headers or {}).get(k), str)}


# -- spans ----------------------------------------------------------------------


def consuming(stage: str, queue: str, headers: Sequence[Headers]) -> AbstractContextManager[None]:
    """Around the handling of one consumed batch."""
    if _current is None:
        return _NOTHING
    return _consuming(_current.tracer, stage, queue, headers)


@contextmanager
def _consuming(
    tracer: Tracer, stage: str, queue: str, headers: Sequence[Headers]
) -> Iterator[None]:
    parents = [ctx for h in headers if (ctx := context_from(h)) is not None]
    # One message: a child of it. A batch has many parents: links only.
    parent = parents[0] if len(headers) == 1 and parents else Context()
    attributes: Attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.batch.message_count": len(headers),
    }
    token = _BATCH.set({})
    try:
        with tracer.start_as_current_span(
            f"process {stage}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=_links(parents),
            attributes=attributes,
        ):
            yield
    finally:
        _BATCH.reset(token)


def publishing(
    exchange: str, routing_key: str, msg_type: str, body: bytes, headers: dict[str, Any]
) -> AbstractContextManager[None]:
    """Around one publish; puts the PRODUCER span's context into `headers`."""
    if _current is None:
        return _NOTHING
    return _publishing(_current.tracer, exchange, routing_key, msg_type, body, headers)


@contextmanager
def _publishing(
    tracer: Tracer,
    exchange: str,
    routing_key: str,
    msg_type: str,
    body: bytes,
    headers: dict[str, Any],
) -> Iterator[None]:
    parent = _parent_of(msg_type, body)
    around = get_current_span().get_span_context()
    # Published for one message of a batch: its parent is that message, and
    # a link leads to the batch that produced it.
    links = [Link(around)] if parent is not None and around.is_valid else []
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "publish",
        "messaging.destination.name": exchange,
        "messaging.rabbitmq.destination.routing_key": routing_key,
    }
    with tracer.start_as_current_span(
        f"publish {routing_key or exchange}",
        context=parent,
        kind=SpanKind.PRODUCER,
        links=links,
        attributes=attributes,
    ):
        _PROPAGATOR.inject(headers)
        yield


def _parent_of(msg_type: str, body: bytes) -> Context | None:
    """The context an envelope continues: its consumed original's in the batch
    being handled, else the one it carries; None for the current one."""
    if msg_type != ENVELOPE_TYPE:
        return None
    try:
        env = envelope_pb2.Envelope.FromString(body)
    except Exception:
        return None  # publishing it is someone else's concern
    batch = _BATCH.get()
    if batch is not None:
        found = batch.get((env.tenant_id, env.intent_id))
        if found is not None:
            return found
    return context_from(env.trace_context)


def serving(
    method: str, metadata: Iterable[tuple[str, Any]] | None
) -> AbstractContextManager[Span | None]:
    """Around one gRPC call on the server: `/pkg.Service/Method`."""
    if _current is None:
        return contextlib.nullcontext()
    return _serving(_current.tracer, method, metadata)


@contextmanager
def _serving(
    tracer: Tracer, method: str, metadata: Iterable[tuple[str, Any]] | None
) -> Iterator[Span | None]:
    service, _, name = method.lstrip("/").partition("/")
    parent = context_from(dict(metadata or ())) or Context()
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    with tracer.start_as_current_span(
        f"{service}/{name}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes=attributes,
        set_status_on_exception=False,
    ) as span:
        yield span


def client_span(method: str) -> Span | None:
    """A CLIENT span for one gRPC call this process makes (`/pkg.Service/Method`),
    a child of the current span. Not made current: a streaming call outlives
    the code that starts it. The caller ends it; `inject_metadata` sends its
    context to the callee. None when tracing is off."""
    if _current is None:
        return None
    service, _, name = method.lstrip("/").partition("/")
    attributes: Attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
    return _current.tracer.start_span(
        f"{service}/{name}", kind=SpanKind.CLIENT, attributes=attributes
    )


def inject_metadata(
    metadata: Iterable[tuple[str, Any]] | None, span: Span | None
) -> list[tuple[str, Any]]:
    """gRPC metadata plus `span`'s W3C fields (replacing any already there);
    unchanged without a span."""
    pairs = list(metadata or ())
    if span is None:
        return pairs
    fields: dict[str, str] = {}
    _PROPAGATOR.inject(fields, context=set_span_in_context(span))
    return [(k, v) for k, v in pairs if k not in fields] + list(fields.items())


def rpc_finished(span: Span | None, code: str, number: int, *, client: bool = False) -> None:
    """Record a call's gRPC status on its span. For the caller any status but
    OK is an error; for the server only those that are its own doing."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", number)
    if code in SERVER_ERROR_CODES or (client and code != "OK"):
        span.set_status(Status(StatusCode.ERROR, code))


def provider_call(
    channel: str, provider: str, messages: int
) -> AbstractContextManager[Span | None]:
    """Around one provider call. Attributes say which and how it went; never
    a contact point or a body."""
    if _current is None:
        return contextlib.nullcontext()
    attributes: Attributes = {
        "sendmesh.channel": channel,
        "sendmesh.provider": provider,
        "messaging.batch.message_count": messages,
    }
    return _current.tracer.start_as_current_span(
        f"provider.send {channel}", kind=SpanKind.CLIENT, attributes=attributes
    )


def call_outcome(span: Span | None, outcome: str, not_sent: int = 0, reason: str = "") -> None:
    """sent (all accepted), partial, transient or permanent (the whole call failed)."""
    if span is None:
        return
    span.set_attribute("sendmesh.outcome", outcome)
    span.set_attribute("sendmesh.not_sent", not_sent)
    if reason:
        span.set_attribute("sendmesh.reason", reason)
    if outcome in ("transient", "permanent"):
        span.set_status(Status(StatusCode.ERROR, reason or outcome))


def _links(contexts: Iterable[Context]) -> list[Link]:
    return [Link(get_current_span(ctx).get_span_context()) for ctx in contexts]
