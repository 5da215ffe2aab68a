"""The channels phase's second provider mode: the real providers (smtp,
twilio, vapid), each talking its protocol to a local peer in this process.

The peers are the test suite's (tests/peers: an aiosmtpd relay with STARTTLS
and AUTH, a Twilio-style Messages API, a push service that verifies VAPID and
decrypts aes128gcm). They are available in a checkout of the project, so they
are imported only here, only when this mode runs; an install without tests/
reports the mode as not measured.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendmesh.profile.v1 import profile_pb2

from cli.bench.channels import PEER_CHANNELS, PEER_PROVIDERS, ChannelSetup, ProviderMode
from cli.intents import ChannelName

FROM_ADDRESS = "bench@sendmesh.test"
# The unsubscribe link the smtp provider requires; nobody clicks it here.
UNSUBSCRIBE_URL = "http://127.0.0.1:9/unsubscribe/{delivery_id}"
SMTP_USER, SMTP_PASSWORD = "bench", "bench-password"
SMS_FROM = "+15005550006"
VAPID_SUBJECT = "mailto:bench@sendmesh.test"


class PeersUnavailable(Exception):
    """The peers cannot be started here; the message says why."""


@dataclass(frozen=True)
class PeerAddresses:
    smtp_port: int
    smtp_ca_file: Path
    sms_api_base: str
    sms_account_sid: str
    sms_auth_token: str


def peer_env(peers: PeerAddresses, vapid_private_pem: str) -> dict[str, dict[str, str]]:
    """Per channel worker: its real provider, pointed at the local peer."""
    return {
        "email": {
            "SENDMESH_PROVIDER": "smtp",
            "SENDMESH_SMTP_HOST": "127.0.0.1",
            "SENDMESH_SMTP_PORT": str(peers.smtp_port),
            "SENDMESH_SMTP_STARTTLS": "true",
            "SENDMESH_SMTP_CA_FILE": str(peers.smtp_ca_file),
            "SENDMESH_SMTP_USERNAME": SMTP_USER,
            "SENDMESH_SMTP_PASSWORD": SMTP_PASSWORD,
            "SENDMESH_FROM_ADDRESS": FROM_ADDRESS,
            "SENDMESH_UNSUBSCRIBE_URL": UNSUBSCRIBE_URL,
        },
        "sms": {
            "SENDMESH_PROVIDER": "twilio",
            "SENDMESH_SMS_API_BASE": peers.sms_api_base,
            "SENDMESH_SMS_ACCOUNT_SID": peers.sms_account_sid,
            "SENDMESH_SMS_AUTH_TOKEN": peers.sms_auth_token,
            "SENDMESH_SMS_FROM_NUMBER": SMS_FROM,
        },
        "webpush": {
            "SENDMESH_PROVIDER": "vapid",
            "SENDMESH_VAPID_PRIVATE_KEY": vapid_private_pem,
            "SENDMESH_VAPID_SUBJECT": VAPID_SUBJECT,
            # The peer listens on loopback over plain http: allowed for the bench only.
            "SENDMESH_WEBPUSH_ALLOW_PRIVATE_ENDPOINTS": "true",
            "SENDMESH_WEBPUSH_ALLOW_HTTP": "true",
        },
        # ... and the profiles must accept the peer's http subscriptions.
        "profile": {"SENDMESH_WEBPUSH_ALLOW_HTTP": "true"},
    }


def new_vapid_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class LocalPeers:
    """Running peers: the env for the mesh, and the setup for the phase."""

    env: dict[str, dict[str, str]]
    setup: ChannelSetup


def checkout_root() -> Path:
    """The checkout this module runs from (cli/bench/ is two levels down)."""
    return Path(__file__).resolve().parents[2]


def _drop_login_data_notice(record: logging.LogRecord) -> bool:
    return "login_data is deprecated" not in record.getMessage()


@contextmanager
def local_peers() -> Iterator[LocalPeers]:
    """Start the three peers (threads of this process); stop them on exit."""
    root = checkout_root()
    # `sendmesh` has only the installed packages on its path; tests/ is not one.
    if (root / "tests" / "peers").is_dir() and str(root) not in sys.path:
        sys.path.append(str(root))
    try:
        from tests.peers.sms import ACCOUNT_SID, AUTH_TOKEN, SmsPeer
        from tests.peers.smtp import SmtpPeer, self_signed
        from tests.peers.webpush import WebPushPeer
    except ImportError as err:
        raise PeersUnavailable(
            f"the local peers are the test suite's (tests/peers), not here: {err}"
        ) from None
    # aiosmtpd logs a warning about its own API at every AUTH: noise in the
    # bench's output (a log record, not a Python warning).
    logging.getLogger("mail.log").addFilter(_drop_login_data_notice)
    with ExitStack() as stack:
        certs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sendmesh-peers-")))
        smtp = stack.enter_context(
            SmtpPeer(tls=self_signed(certs), users={SMTP_USER: SMTP_PASSWORD})
        )
        sms = stack.enter_context(SmsPeer())
        push = stack.enter_context(WebPushPeer())

        def subscription(user_id: str) -> profile_pb2.WebPushSubscription:
            target = push.subscribe().target()
            return profile_pb2.WebPushSubscription(
                endpoint=target.endpoint, p256dh=target.p256dh, auth=target.auth
            )

        def received(channel: ChannelName) -> int | None:
            if channel is ChannelName.email:
                return len(smtp.received)
            if channel is ChannelName.sms:
                return len(sms.accepted)
            if channel is ChannelName.webpush:
                return sum(1 for p in push.pushes if not p.error and p.status == 201)
            return None

        addresses = PeerAddresses(smtp.port, certs / "relay.crt", sms.url, ACCOUNT_SID, AUTH_TOKEN)
        setup = ChannelSetup(
            ProviderMode.peers, PEER_PROVIDERS, PEER_CHANNELS, subscription, received
        )
        yield LocalPeers(peer_env(addresses, new_vapid_pem()), setup)
