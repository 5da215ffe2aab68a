"""`sendmesh status`: where every delivery of an intent stands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc

from cli.client import CALL_TIMEOUT_S, MeshClient
from cli.commands.calls import mesh_client
from cli.console import emit_json, out
from cli.options import DEFAULT_INTAKE, DEFAULT_VAR_DIR, ApiKey, IntakeAddr, JsonOut, VarDir
from cli.views import deliveries_table, intent_row, update_row


def status(
    intent_id: Annotated[str, typer.Argument(help="The id `sendmesh send` printed.")],
    json_out: JsonOut = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow changes as they happen.")] = False,
    intake: IntakeAddr = DEFAULT_INTAKE,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Show each delivery's state, reason, stage and time."""
    with mesh_client(intake, api_key, var_dir) as client:
        if watch:
            watch_intent(client, intent_id, json_out)
        else:
            show_intent(client, intent_id, json_out)


def show_intent(client: MeshClient, intent_id: str, json_out: bool) -> None:
    stub = intake_pb2_grpc.IntakeStub(client.channel)
    request = intake_pb2.GetIntentRequest(intent_id=intent_id)
    reply = stub.GetIntent(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    row = intent_row(reply.intent)
    if json_out:
        emit_json(row)
        return
    title = f"intent {row['intent_id']}: {row['state']} (accepted {row['accepted_at']})"
    out.print(deliveries_table(row["deliveries"], title))


def watch_intent(client: MeshClient, intent_id: str, json_out: bool) -> None:
    """Streams until the intent completes, the server hangs up, or Ctrl-C."""
    stub = intake_pb2_grpc.IntakeStub(client.channel)
    stream = stub.WatchIntent(
        intake_pb2.WatchIntentRequest(intent_id=intent_id), metadata=client.metadata
    )
    try:
        for update in stream:
            row = update_row(update)
            if json_out:
                emit_json(row, compact=True)
            else:
                out.print(watch_line(row))
    except KeyboardInterrupt:
        stream.cancel()


def watch_line(row: dict[str, object]) -> Text:
    delivery = row.get("delivery")
    if not isinstance(delivery, dict):
        return Text(f"intent {row['intent_id']}: {row['state']}")
    fields = ("at", "user_id", "channel", "state", "reason", "stage")
    return Text("  ".join(str(delivery[f]) for f in fields))
