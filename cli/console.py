"""Where the CLI writes: results to stdout, messages and errors to stderr."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

# soft_wrap: keys, ids and command lines must stay on one line to be copied.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def error_line(message: str) -> Text:
    # Text, not markup: messages carry field paths and brackets of their own.
    return Text.assemble(("error: ", "bold red"), message)


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit with `code`."""
    err.print(error_line(message))
    raise typer.Exit(code)


def emit_json(value: object, *, compact: bool = False) -> None:
    """JSON on stdout, uncoloured, for machines (compact: one object per line)."""
    text = json.dumps(value, separators=(",", ":")) if compact else json.dumps(value, indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
