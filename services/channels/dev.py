"""The base of every channel's dev provider: real code that writes what it
would send, one JSON file per message, to <var_dir>/outbox/<channel>/<delivery_id>.json.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.channels.provider import OutgoingMessage, SendResult, permanent, sent
from shared import reasons
from shared.errors import TransientError

# Delivery ids become file names: never a path.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class DevProvider(abc.ABC):
    """Each channel's dev provider says only what its vendor would be sent."""

    name = "dev"
    channel = ""

    def __init__(self, var_dir: Path) -> None:
        self.outbox = var_dir / "outbox" / self.channel

    @abc.abstractmethod
    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        """What the vendor would be asked to send (to, subject, text...)."""

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        files: list[tuple[Path, dict[str, Any]]] = []
        results: list[SendResult] = []
        for m in messages:
            if not SAFE_ID.match(m.delivery_id):
                results.append(permanent(m.delivery_id, reasons.PROVIDER_ERROR, "bad delivery id"))
                continue
            files.append((self.outbox / f"{m.delivery_id}.json", describe(m, self.payload(m))))
            results.append(sent(m.delivery_id, m.delivery_id))
        try:
            await asyncio.to_thread(write_files, files)
        except OSError as err:  # a full or read-only disk may pass
            raise TransientError(f"outbox not writable: {err.strerror}") from err
        return results


def describe(message: OutgoingMessage, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "tenant_id": message.tenant_id,
        "intent_id": message.intent_id,
        "delivery_id": message.delivery_id,
        "user_id": message.user_id,
        "channel": message.channel,
        "category": message.category,
        "kind": message.kind,
        "metadata": dict(message.metadata),
        **payload,
    }


def write_files(files: list[tuple[Path, dict[str, Any]]]) -> None:
    """Write each file whole (temp file, then rename): a reader never sees half."""
    for path, document in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
