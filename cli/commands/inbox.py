"""`sendmesh inbox`: a user's in-app messages, newest first."""

from __future__ import annotations

from typing import Annotated

import typer
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc

from cli.client import CALL_TIMEOUT_S
from cli.commands.calls import mesh_client
from cli.console import emit_json, out
from cli.options import DEFAULT_INAPP, DEFAULT_VAR_DIR, ApiKey, InappAddr, JsonOut, VarDir
from cli.views import inbox_table, inbox_view


def inbox(
    user: Annotated[str, typer.Argument(help="The user whose inbox to show.")],
    json_out: JsonOut = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Messages to show.")] = 20,
    inapp: InappAddr = DEFAULT_INAPP,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """List the user's in-app inbox."""
    request = inbox_pb2.ListInboxRequest(user_id=user, page_size=limit)
    with mesh_client(inapp, api_key, var_dir) as client:
        stub = inbox_pb2_grpc.InboxStub(client.channel)
        reply = stub.ListInbox(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    view = inbox_view(user, reply)
    if json_out:
        emit_json(view)
    else:
        out.print(inbox_table(view))
