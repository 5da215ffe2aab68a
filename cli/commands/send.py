"""`sendmesh send`: submit one intent from the command line."""

from __future__ import annotations

from typing import Annotated

import typer
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc

from cli.client import CALL_TIMEOUT_S
from cli.commands.calls import mesh_client
from cli.console import emit_json, out
from cli.intents import ChannelName, KindName, SendOptions, StrategyName, build_send_intent
from cli.options import DEFAULT_INTAKE, DEFAULT_VAR_DIR, ApiKey, IntakeAddr, JsonOut, VarDir


def send(
    user: Annotated[list[str], typer.Option("--user", "-u", help="Recipient user id (repeat).")],
    channel: Annotated[
        list[ChannelName], typer.Option("--channel", "-c", help="Channel (repeat, in order).")
    ],
    title: Annotated[str, typer.Option(help="Title (in-app, web push; email subject).")] = "",
    body: Annotated[str, typer.Option(help="Body text.")] = "",
    subject: Annotated[str, typer.Option(help="Email subject (default: the title).")] = "",
    kind: Annotated[KindName, typer.Option(help="Transactional or marketing.")] = (
        KindName.transactional
    ),
    category: Annotated[str, typer.Option(help="What the message is about.")] = "general",
    key: Annotated[
        str, typer.Option("--key", help="Idempotency key (default: random).", show_default=False)
    ] = "",
    strategy: Annotated[
        StrategyName, typer.Option(help="all: every channel; first: first available.")
    ] = StrategyName.all,
    json_out: JsonOut = False,
    intake: IntakeAddr = DEFAULT_INTAKE,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Submit a send intent; prints its id."""
    opts = SendOptions(user, channel, title, body, subject, kind, category, key, strategy)
    request = intake_pb2.SubmitRequest(intent=build_send_intent(opts))
    with mesh_client(intake, api_key, var_dir) as client:
        stub = intake_pb2_grpc.IntakeStub(client.channel)
        reply = stub.Submit(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    if json_out:
        emit_json({"intent_id": reply.intent_id, "duplicate": reply.duplicate}, compact=True)
    elif reply.duplicate:
        out.print(f"{reply.intent_id} (duplicate: this idempotency key was seen before)")
    else:
        out.print(reply.intent_id)
