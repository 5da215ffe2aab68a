"""`sendmesh inbox`: a user's in-app messages, newest first, and their states.

With an action (`--read ID...`, `--unread ID...`, `--archive ID...`,
`--unarchive ID...`, `--read-all`) the change is made first, then the inbox shown.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc

from cli.client import CALL_TIMEOUT_S, MeshClient
from cli.commands.calls import mesh_client
from cli.console import emit_json, err, fail, out
from cli.options import DEFAULT_INAPP, DEFAULT_VAR_DIR, ApiKey, InappAddr, JsonOut, VarDir
from cli.views import inbox_table, inbox_view


class Shown(StrEnum):
    all = "all"
    unread = "unread"
    unseen = "unseen"
    archived = "archived"


STATUSES = {
    Shown.all: inbox_pb2.INBOX_STATUS_ALL,
    Shown.unread: inbox_pb2.INBOX_STATUS_UNREAD,
    Shown.unseen: inbox_pb2.INBOX_STATUS_UNSEEN,
    Shown.archived: inbox_pb2.INBOX_STATUS_ARCHIVED,
}

# action -> (RPC, request type, past tense for the summary line); each names messages.
BY_ID: dict[str, tuple[str, Any, str]] = {
    "read": ("MarkRead", inbox_pb2.MarkReadRequest, "marked read"),
    "unread": ("MarkUnread", inbox_pb2.MarkUnreadRequest, "marked unread"),
    "archive": ("Archive", inbox_pb2.ArchiveRequest, "archived"),
    "unarchive": ("Unarchive", inbox_pb2.UnarchiveRequest, "unarchived"),
}


def _flag(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}", help=help_text)


def inbox(
    user: Annotated[str, typer.Argument(help="The user whose inbox to show.")],
    message_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Message ids for --read, --unread, --archive or --unarchive."),
    ] = None,
    read: Annotated[bool, _flag("read", "Mark the given messages read.")] = False,
    unread: Annotated[bool, _flag("unread", "Mark the given messages unread.")] = False,
    archive: Annotated[bool, _flag("archive", "Archive the given messages.")] = False,
    unarchive: Annotated[bool, _flag("unarchive", "Bring archived messages back.")] = False,
    read_all: Annotated[bool, _flag("read-all", "Mark every message read.")] = False,
    status: Annotated[Shown, typer.Option("--status", help="Which messages to list.")] = Shown.all,
    json_out: JsonOut = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Messages to show.")] = 20,
    inapp: InappAddr = DEFAULT_INAPP,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """List the user's in-app inbox; mark messages read, unread, archived."""
    chosen = {"read": read, "unread": unread, "archive": archive, "unarchive": unarchive}
    action = _one_action([a for a, on in chosen.items() if on] + (["read-all"] if read_all else []))
    ids = message_ids or []
    if action in BY_ID and not ids:
        fail(f"--{action} needs the ids of the messages (they are in the table's id column)", 2)
    if ids and action not in BY_ID:
        fail("message ids are for --read, --unread, --archive or --unarchive", 2)
    with mesh_client(inapp, api_key, var_dir) as client:
        stub = inbox_pb2_grpc.InboxStub(client.channel)
        summary = _act(stub, client, user, action, ids) if action else None
        request = inbox_pb2.ListInboxRequest(user_id=user, page_size=limit, status=STATUSES[status])
        reply = stub.ListInbox(request, metadata=client.metadata, timeout=CALL_TIMEOUT_S)
    view = inbox_view(user, reply, status.value)
    if json_out:
        emit_json(view if summary is None else {**view, "updated": summary[1]})
        return
    if summary is not None:
        err.print(f"{summary[0]}: {summary[1]} message(s) changed")
    out.print(inbox_table(view))


def _one_action(actions: list[str]) -> str | None:
    if len(actions) > 1:
        fail(f"one action at a time, not {' and '.join('--' + a for a in actions)}", 2)
    return actions[0] if actions else None


def _act(
    stub: inbox_pb2_grpc.InboxStub, client: MeshClient, user: str, action: str, ids: list[str]
) -> tuple[str, int]:
    """Make the change; (what was done, how many messages changed)."""
    if action == "read-all":
        reply: Any = stub.MarkAllRead(
            inbox_pb2.MarkAllReadRequest(user_id=user),
            metadata=client.metadata,
            timeout=CALL_TIMEOUT_S,
        )
        return "marked all read", int(reply.updated)
    method, request_type, done = BY_ID[action]
    reply = getattr(stub, method)(
        request_type(user_id=user, message_ids=ids),
        metadata=client.metadata,
        timeout=CALL_TIMEOUT_S,
    )
    return done, int(reply.updated)
