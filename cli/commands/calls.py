"""Running one RPC from a command: a client, the call, errors as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from cli.client import MeshClient, NoApiKey, connect, describe_rpc_error
from cli.console import fail


@contextmanager
def mesh_client(address: str, api_key: str | None, var_dir: Path) -> Iterator[MeshClient]:
    """A client for one command; any gRPC error ends the command with exit code 1."""
    try:
        client = connect(address, api_key, var_dir)
    except NoApiKey as err:
        fail(str(err))
    try:
        yield client
    except grpc.RpcError as err:
        fail(describe_rpc_error(err, address))
    finally:
        client.close()
