"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.mesh import DEFAULT_BASE_PORT, DEFAULT_HOST, DEFAULT_VAR_DIR, SERVICE_NAMES

DEFAULT_INTAKE = f"{DEFAULT_HOST}:{DEFAULT_BASE_PORT + SERVICE_NAMES.index('intake')}"
DEFAULT_INAPP = f"{DEFAULT_HOST}:{DEFAULT_BASE_PORT + SERVICE_NAMES.index('inapp')}"

VarDir = Annotated[
    Path,
    typer.Option("--var-dir", help="The mesh's var dir (holds dev-api-key).", show_default=True),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key; else $SENDMESH_API_KEY, else <var-dir>/dev-api-key.",
        show_default=False,
    ),
]
IntakeAddr = Annotated[str, typer.Option("--intake", help="Intake gRPC address.")]
InappAddr = Annotated[str, typer.Option("--inapp", help="In-app inbox gRPC address.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]

__all__ = ["DEFAULT_INAPP", "DEFAULT_INTAKE", "DEFAULT_VAR_DIR"]
