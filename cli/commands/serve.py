"""`sendmesh serve`: run one service in the foreground."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli.console import fail
from cli.mesh import SERVICE_NAMES, service_command


def serve(
    service: Annotated[str, typer.Argument(help="One of: " + ", ".join(SERVICE_NAMES))],
) -> None:
    """Replace this process with `python -m services.<service>` (settings: SENDMESH_*)."""
    if service not in SERVICE_NAMES:
        fail(f"unknown service {service!r}; valid services: {', '.join(SERVICE_NAMES)}", code=2)
    argv = service_command(sys.executable, service)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
