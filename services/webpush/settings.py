from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from services.channels.settings import ChannelSettings
from services.webpush.push import MAX_TTL_S, Urgency

# RFC 8292 §2.1: the contact is a mailto: or an https: URI.
VAPID_SUBJECT = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://[^\s/?#]+[^\s]*)$")


class WebPushSettings(ChannelSettings):
    service: str = "webpush"
    grpc_port: int = 50057
    metrics_port: int = 9107

    # VAPID (RFC 8292), needed by the `vapid` provider only: a P-256 private key
    # as PEM, or base64url of the raw 32-byte scalar or of its DER.
    vapid_private_key: SecretStr | None = None
    vapid_subject: str = ""
    # RFC 8030 §5.2: how long the push service keeps an undelivered message.
    webpush_ttl_s: int = Field(86_400, ge=0, le=MAX_TTL_S)
    webpush_urgency: Urgency = "normal"
    webpush_timeout_s: float = Field(10.0, gt=0, le=120)
    # Requests in flight at once, over every subscription of a batch.
    webpush_concurrency: int = Field(32, ge=1, le=1_000)
    # Tests only: a push endpoint on a private address, or over plain http,
    # would let a subscriber aim our requests at the internal network.
    webpush_allow_private_endpoints: bool = False
    webpush_allow_http: bool = False

    @field_validator("vapid_subject")
    @classmethod
    def _subject_is_mailto_or_https(cls, value: str) -> str:
        if value and not VAPID_SUBJECT.match(value):
            raise ValueError("must be a mailto: or https: URI")
        return value
