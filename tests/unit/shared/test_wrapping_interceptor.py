"""shared/grpc/interceptors.py: the wrappings folded into one interceptor."""

from __future__ import annotations

from typing import Any

import grpc

from shared.grpc.interceptors import Behaviour, Wrapping, WrappingInterceptor


class Tagging(Wrapping):
    """Puts its name around the behaviour's answer; skips methods it is told to."""

    def __init__(self, name: str, skip: str = "") -> None:
        self.name = name
        self.skip = skip

    def wraps(self, method: str) -> bool:
        return method != self.skip

    def wrap(self, behaviour: Behaviour, request: Any, ctx: Any, method: str, stream: bool) -> Any:
        async def call() -> str:
            return f"{self.name}({await behaviour(request, ctx)})"

        return call()


class Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def details(method: str) -> grpc.HandlerCallDetails:
    return Details(method)


def handler_answering(answer: str) -> grpc.RpcMethodHandler:
    async def behaviour(request: Any, ctx: Any) -> str:
        return answer

    return grpc.unary_unary_rpc_method_handler(behaviour)


async def test_the_first_wrapping_is_outermost_and_a_skipped_one_is_left_out() -> None:
    interceptor = WrappingInterceptor([Tagging("outer"), Tagging("inner", skip="/s/Open")])
    servicer = {"/s/Call": handler_answering("x"), "/s/Open": handler_answering("y")}

    async def continuation(d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return servicer[d.method]

    call = await interceptor.intercept_service(continuation, details("/s/Call"))
    open_ = await interceptor.intercept_service(continuation, details("/s/Open"))
    assert await call.unary_unary(b"", None) == "outer(inner(x))"
    assert await open_.unary_unary(b"", None) == "outer(y)"


async def test_a_method_is_wrapped_once_until_its_handler_changes() -> None:
    interceptor = WrappingInterceptor([Tagging("w")])
    servicer = {"/s/Call": handler_answering("old")}

    async def continuation(d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return servicer[d.method]

    first = await interceptor.intercept_service(continuation, details("/s/Call"))
    again = await interceptor.intercept_service(continuation, details("/s/Call"))
    assert again is first
    servicer["/s/Call"] = handler_answering("new")
    changed = await interceptor.intercept_service(continuation, details("/s/Call"))
    assert changed is not first
    assert await changed.unary_unary(b"", None) == "w(new)"


async def test_an_unknown_method_stays_unknown() -> None:
    interceptor = WrappingInterceptor([Tagging("w")])

    async def continuation(d: grpc.HandlerCallDetails) -> None:
        return None

    assert await interceptor.intercept_service(continuation, details("/s/Nope")) is None
