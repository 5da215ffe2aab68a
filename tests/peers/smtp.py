"""A local SMTP relay (aiosmtpd in its own thread) that records what it accepted.

It can speak STARTTLS or implicit TLS with a self-signed certificate made here,
require AUTH, answer scripted replies to chosen recipients, and drop the
connection in the middle of a session. `self_signed` and `dkim_keys` make the
certificate and the DKIM key pair a test trusts.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.policy
import ipaddress
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.servers import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Received:
    """One message as the peer took it: envelope and the exact bytes after DATA."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes = field(repr=False)

    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=email.policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message


class SmtpPeer:
    """Start with `with SmtpPeer() as peer:`; point smtp_host/smtp_port at it.

    `replies` maps a recipient to the reply its RCPT gets instead of 250;
    `drop_after` closes the connection at the DATA of message number N+1.
    """

    def __init__(
        self,
        *,
        tls: TlsFiles | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        replies: dict[str, str] | None = None,
        drop_after: int | None = None,
    ) -> None:
        self.port = free_port()
        self.users = users or {}
        self.replies = replies or {}
        self.drop_after = drop_after
        self.received: list[Received] = []
        self.connections = 0
        self.dropped = 0
        self.logins = 0
        self.failed_logins = 0
        context = server_context(tls) if tls else None
        options: dict[str, Any] = {"ssl_context": context} if implicit_tls else {}
        if context and not implicit_tls:
            options.update(tls_context=context, require_starttls=True)
        if self.users:
            options.update(authenticator=self.authenticate, auth_required=not implicit_tls)
        if self.users and implicit_tls:
            # aiosmtpd counts only STARTTLS as TLS; this socket is TLS from the start.
            options.update(auth_require_tls=False)
        self.controller = CountingController(
            self,
            Handler(self),
            hostname=HOST,
            port=self.port,
            server_hostname="peer.test",
            **options,
        )

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        self.connections = 0  # the controller's own readiness probe is not a client
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        self.logins += ok
        self.failed_logins += not ok
        return AuthResult(success=ok, handled=False)

    def only(self) -> EmailMessage:
        [received] = self.received
        return received.parsed()


class CountingController(Controller):
    def __init__(self, peer: SmtpPeer, handler: Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.peer = peer

    def factory(self) -> SMTP:
        self.peer.connections += 1
        return super().factory()


class Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.peer.replies:
            return self.peer.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        peer = self.peer
        if peer.drop_after is not None and len(peer.received) >= peer.drop_after:
            peer.dropped += 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # no reply at all: the client cannot know
            return "421 dropped"
        content = envelope.original_content or b""
        peer.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 OK queued"


def server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert, tls.key)
    return context


def self_signed(directory: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost, its own CA: trust it with the cert file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sendmesh test relay")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / "relay.crt", directory / "relay.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(pem_private(key))
    return files


def dkim_keys() -> tuple[bytes, bytes]:
    """A DKIM private key (PKCS#1 PEM, as dkimpy reads it) and its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem_private(key), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
