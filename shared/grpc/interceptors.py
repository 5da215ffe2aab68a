"""The server interceptor: metrics, authentication, tracing and status mapping.

Each wraps the method's behaviour so that it runs in the handler's own task:
context variables it sets (the tenant) are seen by the servicer.
"""

from __future__ import annotations

import abc
import functools
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_status import rpc_status

from shared import auth, metrics, tracing
from shared.grpc.status import StatusError, internal, unauthenticated
from shared.logs import get_logger

log = get_logger(__name__)

Behaviour = Callable[..., Any]
# Wraps one call: (behaviour, request, context, method, streaming) -> awaitable
# result (unary) or async iterator (server streaming).
Wrapper = Callable[[Behaviour, Any, grpc.aio.ServicerContext, str, bool], Any]

# Health and reflection are open: probes and tools carry no tenant key.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _rebuild(handler: grpc.RpcMethodHandler, method: str, wrap: Wrapper) -> grpc.RpcMethodHandler:
    def unary(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await wrap(behaviour, request, context, method, False)

        return call

    def streaming(behaviour: Behaviour) -> Behaviour:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in wrap(behaviour, request, context, method, True):
                yield item

        return call

    ser = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **ser)
    if handler.unary_stream:
        iterating = _iterating(handler.unary_stream)
        return grpc.unary_stream_rpc_method_handler(streaming(iterating), **ser)
    # Client-streaming methods are not part of our APIs; pass them through.
    return handler


def _iterating(behaviour: Behaviour) -> Behaviour:
    """A server-streaming behaviour as an async iterator, whichever way it is
    written: grpc also allows a coroutine that answers through context.write
    (the health servicer's Watch does), which `async for` cannot iterate."""

    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        result = behaviour(request, context)
        if hasattr(result, "__aiter__"):
            async for item in result:
                yield item
        else:
            await result

    return call


class Wrapping(abc.ABC):
    """One concern around every call of the methods it `wraps`."""

    def wraps(self, method: str) -> bool:
        return True

    @abc.abstractmethod
    def wrap(self, behaviour: Behaviour, request: Any, ctx: Any, method: str, stream: bool) -> Any:
        """Return the call's result (unary) or an async iterator (stream)."""


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """The wrappings as one interceptor, the first outermost.

    A method's wrapped handler is built once and kept while the servicer
    hands out the same handler: grpc asks for it on every call, and one
    interceptor instead of one per concern is one coroutine less a call each."""

    def __init__(self, wrappings: Sequence[Wrapping]) -> None:
        self._wrappings = tuple(wrappings)
        # method -> (the servicer's handler, its wrapped form)
        self._built: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        built = self._built.get(method)
        if built is not None and built[0] is handler:
            return built[1]
        wrapped = handler
        for wrapping in reversed(self._wrappings):
            if wrapping.wraps(method):
                wrapped = _rebuild(wrapped, method, wrapping.wrap)
        self._built[method] = (handler, wrapped)
        return wrapped


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2)
    return service, name


# Children labelled once per method (and code): `labels()` takes a lock and
# builds a key each time, three times a unary call. Methods and codes are a
# closed set, so these caches stay small.
@functools.cache
def _started(kind: str, svc: str, name: str) -> Any:
    return metrics.GRPC_STARTED.labels(kind, svc, name)


@functools.cache
def _handling(kind: str, svc: str, name: str) -> Any:
    return metrics.GRPC_HANDLING.labels(kind, svc, name)


@functools.cache
def _handled(kind: str, svc: str, name: str, code: str) -> Any:
    return metrics.GRPC_HANDLED.labels(kind, svc, name, code)


class MetricsWrapping(Wrapping):
    """grpc_server_* RED metrics, and every servicer error mapped to a status."""

    def wrap(self, behaviour: Behaviour, request: Any, ctx: Any, method: str, stream: bool) -> Any:
        service, name = _split(method)
        if stream:
            return self._stream(behaviour, request, ctx, service, name)
        return self._unary(behaviour, request, ctx, service, name)

    async def _unary(
        self, behaviour: Behaviour, request: Any, ctx: Any, svc: str, name: str
    ) -> Any:
        _started("unary", svc, name).inc()
        start = time.perf_counter()
        code = "OK"
        try:
            return await behaviour(request, ctx)
        except StatusError as err:
            code = err.code.name
            await ctx.abort_with_status(rpc_status.to_status(err.status))
        except Exception as err:
            code = _code_of(ctx, err)
            if code == "UNKNOWN":
                log.exception("rpc_failed", method=name)
                code = "INTERNAL"
                await ctx.abort_with_status(rpc_status.to_status(internal().status))
            raise
        finally:
            _handled("unary", svc, name, code).inc()
            _handling("unary", svc, name).observe(time.perf_counter() - start)

    async def _stream(
        self, behaviour: Behaviour, request: Any, ctx: Any, svc: str, name: str
    ) -> AsyncIterator[Any]:
        _started("server_stream", svc, name).inc()
        start = time.perf_counter()
        code = "OK"
        sent = metrics.GRPC_MSG_SENT.labels("server_stream", svc, name)
        try:
            async for item in behaviour(request, ctx):
                sent.inc()
                yield item
        except StatusError as err:
            code = err.code.name
            await ctx.abort_with_status(rpc_status.to_status(err.status))
        except Exception as err:
            code = _code_of(ctx, err)
            if code == "UNKNOWN":
                log.exception("rpc_failed", method=name)
                code = "INTERNAL"
                await ctx.abort_with_status(rpc_status.to_status(internal().status))
            raise
        finally:
            _handled("server_stream", svc, name, code).inc()
            _handling("server_stream", svc, name).observe(time.perf_counter() - start)


class TracingWrapping(Wrapping):
    """A SERVER span per call, continuing the caller's W3C trace context.

    Outermost, so the servicer runs inside the span and whatever it hands on
    (intake's outbox row) carries the call's context."""

    def wraps(self, method: str) -> bool:
        return not method.startswith(OPEN_PREFIXES)  # probes would only add noise

    def wrap(self, behaviour: Behaviour, request: Any, ctx: Any, method: str, stream: bool) -> Any:
        if stream:
            return self._stream(behaviour, request, ctx, method)
        return self._unary(behaviour, request, ctx, method)

    async def _unary(self, behaviour: Behaviour, request: Any, ctx: Any, method: str) -> Any:
        with tracing.serving(method, ctx.invocation_metadata()) as span:
            try:
                return await behaviour(request, ctx)
            finally:
                _finish_span(span, ctx)

    async def _stream(
        self, behaviour: Behaviour, request: Any, ctx: Any, method: str
    ) -> AsyncIterator[Any]:
        with tracing.serving(method, ctx.invocation_metadata()) as span:
            try:
                async for item in behaviour(request, ctx):
                    yield item
            finally:
                _finish_span(span, ctx)


def _finish_span(span: Any, ctx: Any) -> None:
    code = ctx.code()
    status = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
    tracing.rpc_finished(span, status.name, status.value[0])


class AuthWrapping(Wrapping):
    """Resolves the API key to a tenant, or ends the call UNAUTHENTICATED."""

    def __init__(self, hashed_keys: dict[str, str], internal_key: str | None = None) -> None:
        self._keys = hashed_keys
        self._internal = auth.hash_api_key(internal_key) if internal_key else None

    def wraps(self, method: str) -> bool:
        return not method.startswith(OPEN_PREFIXES)

    def _authenticate(self, ctx: Any) -> None:
        key = auth.key_from_metadata(ctx.invocation_metadata())
        if key is None:
            raise unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        if self._internal is not None and hmac.compare_digest(
            auth.hash_api_key(key), self._internal
        ):
            tenant = auth.tenant_from_metadata(ctx.invocation_metadata())
            if tenant is None:
                raise unauthenticated(f"the internal key needs '{auth.TENANT_HEADER}'")
            auth.set_current_tenant(tenant)
            return
        tenant = auth.tenant_for_key(key, self._keys)
        if tenant is None:
            raise unauthenticated("unknown or revoked API key")
        auth.set_current_tenant(tenant)

    def wrap(self, behaviour: Behaviour, request: Any, ctx: Any, method: str, stream: bool) -> Any:
        if stream:
            return self._stream(behaviour, request, ctx)
        return self._unary(behaviour, request, ctx)

    async def _unary(self, behaviour: Behaviour, request: Any, ctx: Any) -> Any:
        self._authenticate(ctx)
        return await behaviour(request, ctx)

    async def _stream(self, behaviour: Behaviour, request: Any, ctx: Any) -> AsyncIterator[Any]:
        self._authenticate(ctx)
        async for item in behaviour(request, ctx):
            yield item


def _code_of(ctx: Any, err: BaseException) -> str:
    if isinstance(err, grpc.aio.AbortError):
        code = ctx.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return "UNKNOWN"
