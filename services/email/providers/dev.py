"""Dev email provider: writes the email it would send to var/outbox/email/."""

from __future__ import annotations

from typing import Any

from services.channels.dev import DevProvider
from services.channels.provider import OutgoingMessage


class DevEmailProvider(DevProvider):
    channel = "email"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        content = message.content
        return {
            "to": message.contact.email,
            "subject": content.get("subject", ""),
            "text": content.get("text", ""),
            "html": content.get("html", ""),
        }
