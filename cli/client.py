"""gRPC channels to the mesh, with the caller's API key, and readable errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from cli.keyfile import KeyFileError, dev_key_path, read_key_file

API_KEY_ENV = "SENDMESH_API_KEY"
# Calls are answered in milliseconds; a hung mesh must not hang a terminal.
CALL_TIMEOUT_S = 15.0

Metadata = tuple[tuple[str, str], ...]


class NoApiKey(Exception):
    """No key was given, set or found; the message says where we looked."""


def resolve_api_key(flag: str | None, env: Mapping[str, str], var_dir: Path) -> str:
    """--api-key, else $SENDMESH_API_KEY, else <var_dir>/dev-api-key."""
    if flag:
        return flag.strip()
    if env.get(API_KEY_ENV, "").strip():
        return env[API_KEY_ENV].strip()
    path = dev_key_path(var_dir)
    if path.exists():
        try:
            return read_key_file(path)
        except KeyFileError as err:
            raise NoApiKey(str(err)) from None
    raise NoApiKey(
        f"no API key: pass --api-key, set {API_KEY_ENV}, or start the mesh with "
        f"`sendmesh run` (it writes {path})"
    )


def auth_metadata(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


class MeshClient:
    """One channel to one service, and the metadata every call carries."""

    def __init__(self, address: str, api_key: str) -> None:
        self.address = address
        self.metadata = auth_metadata(api_key)
        self.channel = grpc.insecure_channel(address)

    def close(self) -> None:
        self.channel.close()


def connect(address: str, api_key_flag: str | None, var_dir: Path) -> MeshClient:
    return MeshClient(address, resolve_api_key(api_key_flag, os.environ, var_dir))


def field_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations carried by an error, if any."""
    try:
        status = rpc_status.from_call(err)
    except ValueError:
        # Trailers disagree with the call's own status: report the call's.
        return []
    if status is None:
        return []
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found


def describe_rpc_error(err: grpc.RpcError, address: str) -> str:
    """One line: the status code, then the field violations or the message, plus a hint."""
    code: grpc.StatusCode = err.code()
    violations = field_violations(err)
    listed = "; ".join(f"{f}: {d}" for f, d in violations)
    text = listed or err.details() or ""
    hint = _HINTS.get(code, "").format(address=address)
    return f"{code.name}: {text}{hint}"


_HINTS = {
    grpc.StatusCode.UNAVAILABLE: " (is the mesh running at {address}? start it with `make run`)",
    grpc.StatusCode.UNAUTHENTICATED: " (check --api-key, $SENDMESH_API_KEY or <var>/dev-api-key)",
    grpc.StatusCode.DEADLINE_EXCEEDED: " (no answer from {address} in time)",
}
