"""Dev SMS provider: writes the text message it would send to var/outbox/sms/."""

from __future__ import annotations

from typing import Any

from services.channels.dev import DevProvider
from services.channels.provider import OutgoingMessage


class DevSmsProvider(DevProvider):
    channel = "sms"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        return {"to": message.contact.phone, "text": message.content.get("text", "")}
