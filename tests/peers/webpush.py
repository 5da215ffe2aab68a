"""A local Web Push service (RFC 8030) that does what a real one does to a push.

Each subscription gets a real P-256 key pair and a 16-byte auth secret, as a
browser would. On every push the peer verifies the VAPID Authorization header
(RFC 8292: an ES256 JWT signed by `k`, aud the endpoint's origin, exp in the
future and at most 24 h away, a sub) with cryptography alone, then decrypts the
aes128gcm body (RFC 8291) with the subscription's private key. A push that fails
either is answered 400 and recorded with its error. Each subscription can be
scripted to answer 201, 404, 410, 429 with Retry-After, 500...
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from services.channels.provider import WebPushTarget

MAX_EXP_S = 24 * 3600  # RFC 8292 §2


class Refused(Exception):
    """Why a push fails verification."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Subscription:
    """A browser's side of one subscription: what it gives out, what it keeps."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return "/" + self.endpoint.split("/", 3)[3]

    def target(self) -> WebPushTarget:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return WebPushTarget(self.endpoint, b64url(point), b64url(self.auth_secret))


@dataclass(frozen=True)
class Push:
    """One push as the peer received it."""

    path: str
    headers: dict[str, str]  # lower-case names
    status: int  # what the peer answered
    payload: bytes = b""  # decrypted
    claims: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # why verification failed; "" when it passed

    def json(self) -> Any:
        return json.loads(self.payload)


def verify_vapid(header: str, origin: str) -> dict[str, Any]:
    """The claims of a valid `vapid t=<JWT>, k=<key>` header, or Refused."""
    scheme, _, params = header.partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(f"Authorization scheme {scheme!r} is not vapid")
    fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
    if "t" not in fields or "k" not in fields:
        raise Refused("vapid header without t and k")
    signed, _, signature = fields["t"].rpartition(".")
    head, _, body = signed.partition(".")
    if json.loads(unb64url(head)).get("alg") != "ES256":
        raise Refused("JWT alg is not ES256")
    check_signature(fields["k"], signed.encode(), unb64url(signature))
    claims: dict[str, Any] = json.loads(unb64url(body))
    check_claims(claims, origin)
    return claims


def check_signature(key: str, signed: bytes, signature: bytes) -> None:
    """ES256 as JWS has it (RFC 7518 §3.4): r and s, 32 bytes each."""
    if len(signature) != 64:
        raise Refused("JWT signature is not 64 bytes")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    try:
        public.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("JWT signature does not verify with k") from None


def check_claims(claims: dict[str, Any], origin: str) -> None:
    now = time.time()
    if claims.get("aud") != origin:
        raise Refused(f"aud {claims.get('aud')!r} is not {origin!r}")
    if not now < float(claims.get("exp", 0)) <= now + MAX_EXP_S:
        raise Refused("exp is past or more than 24 h away")
    if not claims.get("sub"):
        raise Refused("no sub claim")


class WebPushPeer:
    """Start with `with WebPushPeer() as peer:`; `peer.subscribe()` for endpoints."""

    def __init__(self) -> None:
        self.pushes: list[Push] = []
        self.requests = 0  # every request that reached the peer, answered or not
        self._subscriptions: dict[str, Subscription] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.peer = self  # type: ignore[attr-defined]
        # A short poll interval: shutdown waits for it, once per test.
        serve = {"poll_interval": 0.05}
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs=serve, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> WebPushPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def subscribe(self, status: int = 201, headers: dict[str, str] | None = None) -> Subscription:
        """A new subscription whose pushes are answered `status` (after verification)."""
        sub = Subscription(f"{self.origin}/push/{uuid.uuid4().hex}", status=status)
        sub.headers = dict(headers or {})
        with self._lock:
            self._subscriptions[sub.path] = sub
        return sub

    def pushes_to(self, sub: Subscription) -> list[Push]:
        with self._lock:
            return [p for p in self.pushes if p.path == sub.path]

    def receive(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str]]:
        with self._lock:
            self.requests += 1
            sub = self._subscriptions.get(path)
        if sub is None:
            return 404, {}
        push = self._verify(sub, headers, body)
        with self._lock:
            self.pushes.append(push)
        if push.error:
            return push.status, {}
        if push.status == 201:  # RFC 8030 §5: the push message resource
            return 201, {"Location": f"{self.origin}/message/{uuid.uuid4().hex}", **sub.headers}
        return push.status, sub.headers

    def _verify(self, sub: Subscription, headers: dict[str, str], body: bytes) -> Push:
        try:
            if headers.get("content-encoding") != "aes128gcm":
                raise Refused("Content-Encoding is not aes128gcm")
            if not headers.get("ttl", "").isdigit():
                raise Refused("no TTL header (RFC 8030 §5.2)")
            claims = verify_vapid(headers.get("authorization", ""), self.origin)
            payload = decrypt(sub, body)
        except (Refused, ValueError) as err:
            return Push(sub.path, headers, 400, error=str(err) or type(err).__name__)
        return Push(sub.path, headers, sub.status, payload, claims)


def decrypt(sub: Subscription, body: bytes) -> bytes:
    try:
        return bytes(
            http_ece.decrypt(
                body,
                private_key=sub.private_key,
                auth_secret=sub.auth_secret,
                version="aes128gcm",
            )
        )
    except (http_ece.ECEException, InvalidTag) as err:
        raise Refused(f"aes128gcm body does not decrypt ({type(err).__name__})") from None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real push service; httpx pools
    timeout = 10  # an idle kept-alive connection lets its thread go

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        peer: WebPushPeer = self.server.peer  # type: ignore[attr-defined]
        status, extra = peer.receive(self.path, headers, body)
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output is for assertions, not access logs."""
