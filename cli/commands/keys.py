"""`sendmesh keys`: make API keys and the hashes services are configured with."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.console import err, out
from shared.auth import hash_api_key, new_api_key

app = typer.Typer(help="Create and hash API keys.", no_args_is_help=True)


def api_keys_line(key_hash: str, tenant: str) -> str:
    """The SENDMESH_API_KEYS setting that admits this key for this tenant."""
    return "SENDMESH_API_KEYS='" + json.dumps({key_hash: tenant}) + "'"


@app.command("new")
def new_key(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="The tenant the key acts for.")],
) -> None:
    """Make a key. It is printed once: only its hash is stored anywhere."""
    key = new_api_key()
    out.print(key)
    err.print("Give the key to the caller; configure the services with (merge with existing keys):")
    out.print(api_keys_line(hash_api_key(key), tenant))


@app.command("hash")
def hash_key(key: Annotated[str, typer.Argument(help="An API key.")]) -> None:
    """Print sha256(key) in hex, as SENDMESH_API_KEYS expects."""
    out.print(hash_api_key(key.strip()))
