"""`sendmesh profiles import`: load profiles from a JSON Lines file.

One JSON object per line: user_id, attributes, locale, timezone, contacts
{email, phone, webpush[]}, quiet_hours, and optionally consents[] and
topics[]. A bad line is reported with its number and skipped; what was
imported stays imported. Calls run concurrently, at most --concurrency at once.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from google.protobuf import json_format
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from cli.client import (
    CALL_TIMEOUT_S,
    NoApiKey,
    auth_metadata,
    describe_rpc_error,
    field_violations,
    resolve_api_key,
)
from cli.console import emit_json, err, error_line, fail, out
from cli.mesh import DEFAULT_BASE_PORT, DEFAULT_HOST, SERVICE_NAMES
from cli.options import DEFAULT_VAR_DIR, ApiKey, JsonOut, VarDir
from shared.envelopes import CHANNELS_BY_NAME

DEFAULT_PROFILE = f"{DEFAULT_HOST}:{DEFAULT_BASE_PORT + SERVICE_NAMES.index('profile')}"
PROFILE_FIELDS = {"user_id", "attributes", "locale", "timezone", "contacts", "quiet_hours"}
# Refusals that are about the line, not about the mesh: skip it and go on.
LINE_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}

app = typer.Typer(help="Profiles: import them in bulk.", no_args_is_help=True)


class BadLine(ValueError):
    """A line that cannot be imported; the message says why."""


@dataclass
class Item:
    profile: profile_pb2.Profile
    consents: list[profile_pb2.Consent]
    topics: list[str]


def parse_line(text: str) -> Item:
    """One line of the file as the calls it makes; BadLine if it is not one."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadLine(f"not JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise BadLine("not a JSON object")
    consents, topics = obj.pop("consents", []), obj.pop("topics", [])
    if unknown := sorted(set(obj) - PROFILE_FIELDS):
        raise BadLine(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(PROFILE_FIELDS))})")
    if not isinstance(consents, list) or not isinstance(topics, list):
        raise BadLine("consents and topics must be lists")
    if not all(isinstance(t, str) for t in topics):
        raise BadLine("topics must be strings")
    try:
        profile = json_format.ParseDict(obj, profile_pb2.Profile())
    except json_format.ParseError as e:
        raise BadLine(str(e)) from None
    return Item(profile, [_consent(i, c) for i, c in enumerate(consents)], topics)


def _consent(index: int, value: Any) -> profile_pb2.Consent:
    if not isinstance(value, dict):
        raise BadLine(f"consents[{index}]: not a JSON object")
    value = {"source": "import", **value}
    channel = str(value.pop("channel", "") or "").lower().removeprefix("channel_")
    if channel and channel not in CHANNELS_BY_NAME:
        raise BadLine(f"consents[{index}].channel: one of {', '.join(CHANNELS_BY_NAME)} or empty")
    try:
        consent = json_format.ParseDict(value, profile_pb2.Consent())
    except json_format.ParseError as e:
        raise BadLine(f"consents[{index}]: {e}") from None
    consent.channel = CHANNELS_BY_NAME.get(channel, 0)  # type: ignore[assignment]
    return consent


@dataclass
class Report:
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    aborted: str = ""


def _rejection(e: grpc.aio.AioRpcError, rename: tuple[str, str]) -> str:
    """The server's field violations, named as the line's own fields."""
    old, new = rename
    found = [
        (f.replace(old, new, 1) if f.startswith(old) else f, d) for f, d in field_violations(e)
    ]
    return "; ".join(f"{f}: {d}" for f, d in found) or e.details() or e.code().name


class Importer:
    def __init__(self, stub: profile_pb2_grpc.ProfilesStub, metadata: Any) -> None:
        self.stub = stub
        self.metadata = metadata

    async def one(self, item: Item) -> str | None:
        """Import one line's profile, consents and topics; why not, if it was refused."""
        user, kw = item.profile.user_id, {"metadata": self.metadata, "timeout": CALL_TIMEOUT_S}
        step: tuple[str, str] = ("profile.", "")
        try:
            await self.stub.UpsertProfile(
                profile_pb2.UpsertProfileRequest(profile=item.profile), **kw
            )
            for i, consent in enumerate(item.consents):
                step = ("consent", f"consents[{i}]")
                await self.stub.SetConsent(
                    profile_pb2.SetConsentRequest(user_id=user, consent=consent), **kw
                )
            for i, topic in enumerate(item.topics):
                step = ("topic", f"topics[{i}]")
                await self.stub.Subscribe(
                    profile_pb2.SubscribeRequest(topic=topic, user_ids=[user]), **kw
                )
        except grpc.aio.AioRpcError as e:
            if e.code() not in LINE_ERRORS:
                raise
            saved = "profile saved, but " if step[0] != "profile." else ""
            return saved + _rejection(e, step)
        return None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if text.strip():
                yield number, text


async def run_import(
    path: Path, address: str, metadata: Any, workers: int, progress: Progress
) -> Report:
    report = Report()
    total = sum(1 for _ in numbered_lines(path))
    task = progress.add_task("importing", total=total)
    queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(maxsize=workers * 4)

    async def work(importer: Importer) -> None:
        while (entry := await queue.get()) is not None:
            number, text = entry
            progress.advance(task)
            if report.aborted:
                continue
            try:
                why = await importer.one(parse_line(text))
            except BadLine as e:
                why = str(e)
            except grpc.aio.AioRpcError as e:
                report.aborted = report.aborted or describe_rpc_error(e, address)
                continue
            if why is None:
                report.imported += 1
            else:
                report.rejected.append((number, why))
                progress.console.print(error_line(f"line {number}: {why}"))

    async with grpc.aio.insecure_channel(address) as channel:
        importer = Importer(profile_pb2_grpc.ProfilesStub(channel), metadata)
        tasks = [asyncio.create_task(work(importer)) for _ in range(workers)]
        for entry in numbered_lines(path):
            if report.aborted:
                break
            await queue.put(entry)
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)
    return report


@app.command("import")
def import_profiles(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines: one profile a line.")
    ],
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-j", min=1, max=64, help="Calls in flight at once.")
    ] = 8,
    json_out: JsonOut = False,
    profile: Annotated[
        str, typer.Option("--profile", help="Profile gRPC address.")
    ] = DEFAULT_PROFILE,
    api_key: ApiKey = None,
    var_dir: VarDir = DEFAULT_VAR_DIR,
) -> None:
    """Import profiles; exits 1 if any line was rejected or the import stopped."""
    try:
        metadata = auth_metadata(resolve_api_key(api_key, os.environ, var_dir))
    except NoApiKey as e:
        fail(str(e))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        report = asyncio.run(run_import(file, profile, metadata, concurrency, progress))
    summary = {
        "imported": report.imported,
        "rejected": len(report.rejected),
        "errors": [{"line": n, "error": why} for n, why in report.rejected],
    }
    if json_out:
        emit_json(summary)
    else:
        out.print(f"imported {report.imported}, rejected {len(report.rejected)}")
    if report.aborted:
        fail(f"stopped: {report.aborted}")
    if report.rejected:
        raise typer.Exit(1)
