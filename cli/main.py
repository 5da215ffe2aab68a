"""The `sendmesh` command: thin wiring of the commands in cli.commands."""

from __future__ import annotations

import typer

from cli.commands import bench, dlq, inbox, keys, profiles, run, send, serve, status, templates

app = typer.Typer(
    help="sendmesh: run the dispatch mesh, send intents, follow them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.run)
app.command("serve")(serve.serve)
app.command("send")(send.send)
app.command("status")(status.status)
app.command("inbox")(inbox.inbox)
app.command("bench")(bench.bench)
app.add_typer(keys.app, name="keys")
app.add_typer(profiles.app, name="profiles")
app.add_typer(templates.app, name="templates")
app.add_typer(dlq.app, name="dlq")
