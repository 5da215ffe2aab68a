"""Dev web push provider: writes the push it would send to var/outbox/webpush/."""

from __future__ import annotations

from typing import Any

from services.channels.dev import DevProvider
from services.channels.provider import OutgoingMessage


class DevWebPushProvider(DevProvider):
    channel = "webpush"

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        content = message.content
        return {
            "to": [target.endpoint for target in message.contact.webpush],
            "payload": {
                "title": content.get("title", ""),
                "body": content.get("body", ""),
                "icon": content.get("icon", ""),
                "url": content.get("url", ""),
            },
        }
