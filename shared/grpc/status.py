"""The one place where errors become gRPC statuses, with rich details."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

DOMAIN = "sendmesh.dev"


class StatusError(Exception):
    """Raised by servicers; the interceptor turns it into the RPC's status."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status

    @property
    def code(self) -> grpc.StatusCode:
        return _CODES[self.status.code]


_CODES = {c.value[0]: c for c in grpc.StatusCode}


def _status(code: int, message: str, *details: object) -> StatusError:
    st = status_pb2.Status(code=code, message=message)
    for d in details:
        packed = any_pb2.Any()
        packed.Pack(d)  # type: ignore[arg-type]
        st.details.append(packed)
    return StatusError(st)


class Violations:
    """Collects field violations; `raise_if_any()` ends in INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def extend(self, other: Iterable[tuple[str, str]]) -> None:
        self.items.extend(other)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise invalid_argument(self.items)


def invalid_argument(violations: Iterable[tuple[str, str]]) -> StatusError:
    items = list(violations)
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in items
        ]
    )
    summary = "; ".join(f"{f}: {d}" for f, d in items[:5])
    return _status(code_pb2.INVALID_ARGUMENT, f"invalid request: {summary}", bad)


def unauthenticated(message: str) -> StatusError:
    info = error_details_pb2.ErrorInfo(reason="API_KEY_INVALID", domain=DOMAIN)
    return _status(code_pb2.UNAUTHENTICATED, message, info)


def not_found(resource_type: str, name: str) -> StatusError:
    info = error_details_pb2.ResourceInfo(resource_type=resource_type, resource_name=name)
    return _status(code_pb2.NOT_FOUND, f"{resource_type} {name} not found", info)


def already_exists(reason: str, message: str, field: str) -> StatusError:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=message)
        ]
    )
    return _status(code_pb2.ALREADY_EXISTS, message, info, bad)


def unavailable(message: str, retry_after_s: float = 1.0) -> StatusError:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(int(retry_after_s * 1000))
    return _status(code_pb2.UNAVAILABLE, message, retry)


def internal(message: str = "internal error") -> StatusError:
    return _status(code_pb2.INTERNAL, message)
