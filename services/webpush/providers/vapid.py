"""Web Push provider: RFC 8030 delivery, RFC 8291 aes128gcm encryption and
RFC 8292 VAPID, selected by SENDMESH_PROVIDER=vapid.

pywebpush encrypts and py_vapid signs, but the POST goes through httpx: the
senders pywebpush ships use requests (blocks the event loop) or aiohttp (not a
dependency). Encrypting costs about 0.1 ms per subscription, done just before
its POST so that a batch never holds the loop for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import http_ece  # type: ignore[import-untyped]
import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid  # type: ignore[import-untyped]
from py_vapid.jwt import sign  # type: ignore[import-untyped]
from py_vapid.utils import b64urlencode  # type: ignore[import-untyped]
from pywebpush import WebPusher, WebPushException  # type: ignore[import-untyped]

from services.channels.provider import OutgoingMessage, SendResult, WebPushTarget, permanent
from services.channels.settings import ChannelSettings
from services.webpush.endpoints import check_endpoint
from services.webpush.push import (
    Answer,
    Rejected,
    audience,
    classify,
    combine,
    encode_payload,
    push_headers,
    push_options,
)
from services.webpush.settings import WebPushSettings
from shared import reasons
from shared.errors import PermanentError, SendmeshError
from shared.settings import SettingsError

VAPID_LIFETIME_S = 12 * 3600  # RFC 8292 §2 allows at most 24 h


def encrypt(target: WebPushTarget, payload: bytes) -> bytes:
    """aes128gcm body for one subscription; ValueError when its keys are bad."""
    keys = {"p256dh": target.p256dh, "auth": target.auth}
    try:
        pusher = WebPusher({"endpoint": target.endpoint, "keys": keys})
        if len(pusher.auth_key) != 16:  # RFC 8291 §3.2; pywebpush does not check
            raise ValueError("auth secret is not 16 bytes")
        return bytes(pusher.encode(payload, "aes128gcm")["body"])
    except (WebPushException, http_ece.ECEException, TypeError) as err:
        raise ValueError("bad subscription keys") from err


def load_vapid_key(settings: WebPushSettings) -> ec.EllipticCurvePrivateKey:
    """The VAPID key, or a start-up error naming every missing or bad key."""
    secret = settings.vapid_private_key
    key = parse_private_key(secret.get_secret_value()) if secret is not None else None
    problems = []
    if not settings.vapid_subject:
        problems.append("SENDMESH_VAPID_SUBJECT: required by the vapid provider")
    if secret is None:
        problems.append("SENDMESH_VAPID_PRIVATE_KEY: required by the vapid provider")
    elif key is None:
        problems.append("SENDMESH_VAPID_PRIVATE_KEY: not a P-256 key (PEM, base64url raw or DER)")
    if problems or key is None:
        raise SettingsError("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))
    return key


def parse_private_key(text: str) -> ec.EllipticCurvePrivateKey | None:
    # A PEM in an environment variable often arrives with its newlines escaped.
    text = text.strip().replace("\\n", "\n")
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Vapid.from_string(text).private_key
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key
    return None


class VapidWebPushProvider:
    """Pushes each message to every subscription of its contact."""

    name = "vapid"

    def __init__(self, settings: WebPushSettings) -> None:
        self.key = load_vapid_key(settings)
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = str(b64urlencode(point))
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.webpush_concurrency)

    @classmethod
    def from_settings(cls, settings: ChannelSettings) -> VapidWebPushProvider:
        if not isinstance(settings, WebPushSettings):
            raise SettingsError("invalid settings:\n  SENDMESH_PROVIDER: vapid is for webpush")
        return cls(settings)

    async def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        # A client per call shares connections within a batch; the Provider
        # protocol has no close hook to end a longer-lived one. No proxy or
        # .netrc from the environment: the endpoint is the subscriber's choice.
        timeout = httpx.Timeout(self.settings.webpush_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            return list(await asyncio.gather(*(self.send_one(client, m) for m in messages)))

    async def send_one(self, client: httpx.AsyncClient, message: OutgoingMessage) -> SendResult:
        targets = {t.endpoint: t for t in message.contact.webpush}  # one push per endpoint
        if not targets:
            return permanent(message.delivery_id, reasons.NO_CONTACT_POINT, "no subscription")
        s = self.settings
        try:
            options = push_options(message.metadata, s.webpush_ttl_s, s.webpush_urgency)
            payload = encode_payload(message.content)
        except Rejected as err:
            return permanent(message.delivery_id, reasons.PROVIDER_REJECTED, str(err))
        headers = push_headers(options)
        pushes = (self.push(client, t, payload, headers) for t in targets.values())
        return combine(
            message.delivery_id, list(zip(targets, await asyncio.gather(*pushes), strict=True))
        )

    async def push(
        self,
        client: httpx.AsyncClient,
        target: WebPushTarget,
        payload: bytes,
        headers: dict[str, str],
    ) -> Answer:
        async with self.slots:
            try:
                response = await self.post(client, target, payload, headers)
            except SendmeshError as err:
                return Answer.failure(err)
            except httpx.HTTPError as err:  # its text may name the endpoint: not kept
                detail = f"push service unreachable ({type(err).__name__})"
                return Answer("transient", reasons.PROVIDER_UNAVAILABLE, detail)
        return classify(response.status_code, response.headers.get("retry-after"))

    async def post(
        self,
        client: httpx.AsyncClient,
        target: WebPushTarget,
        payload: bytes,
        headers: dict[str, str],
    ) -> httpx.Response:
        s = self.settings
        allow_private, allow_http = s.webpush_allow_private_endpoints, s.webpush_allow_http
        await check_endpoint(target.endpoint, allow_private, allow_http=allow_http)
        try:
            body = encrypt(target, payload)
        except ValueError as err:
            raise PermanentError("bad subscription keys", reason=reasons.INVALID_CONTACT) from err
        headers = {**headers, "Authorization": self.authorization(target.endpoint)}
        # Redirects are not followed (httpx's default): one could lead past the guard.
        return await client.post(target.endpoint, content=body, headers=headers)

    def authorization(self, endpoint: str) -> str:
        """RFC 8292 §3: `vapid t=<JWT>, k=<public key>`."""
        claims = {
            "aud": audience(endpoint),
            "exp": int(time.time()) + VAPID_LIFETIME_S,
            "sub": self.settings.vapid_subject,
        }
        return f"vapid t={sign(claims, self.key)}, k={self.public_key}"
