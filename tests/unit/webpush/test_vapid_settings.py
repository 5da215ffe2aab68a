from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr, ValidationError

from services.webpush.providers.vapid import VapidWebPushProvider
from services.webpush.settings import WebPushSettings
from shared.settings import SettingsError

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
DER = KEY.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
SEC1 = KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
).decode()
RAW = KEY.private_numbers().private_value.to_bytes(32, "big")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def settings(key: str | None, subject: str = "mailto:ops@example.com") -> WebPushSettings:
    secret = SecretStr(key) if key is not None else None
    return WebPushSettings(provider="vapid", vapid_private_key=secret, vapid_subject=subject)


@pytest.mark.parametrize("key", [PEM, SEC1, PEM.replace("\n", "\\n"), b64url(RAW), b64url(DER)])
def test_a_vapid_key_loads_as_pem_raw_or_der(key: str):
    provider = VapidWebPushProvider(settings(key))
    assert provider.key.private_numbers() == KEY.private_numbers()


def test_the_vapid_provider_without_keys_stops_start_up_naming_both():
    with pytest.raises(SettingsError) as stopped:
        VapidWebPushProvider(settings(None, subject=""))
    assert "SENDMESH_VAPID_PRIVATE_KEY" in str(stopped.value)
    assert "SENDMESH_VAPID_SUBJECT" in str(stopped.value)


@pytest.mark.parametrize("key", ["not a key", b64url(b"short"), "-----BEGIN PRIVATE KEY-----\nxx"])
def test_a_bad_vapid_key_stops_start_up_without_quoting_it(key: str):
    with pytest.raises(SettingsError, match="not a P-256 key") as stopped:
        VapidWebPushProvider(settings(key))
    assert key not in str(stopped.value)


def test_a_key_on_another_curve_is_refused():
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SettingsError, match="not a P-256 key"):
        VapidWebPushProvider(settings(other.decode()))


def test_the_vapid_key_is_never_in_the_settings_repr():
    assert b64url(RAW) not in repr(settings(b64url(RAW)))


@pytest.mark.parametrize("subject", ["ops@example.com", "http://example.com", "mailto:nobody"])
def test_the_vapid_subject_must_be_a_mailto_or_https_uri(subject: str):
    with pytest.raises(ValidationError):
        settings(PEM, subject)


def test_an_https_subject_is_accepted():
    assert (
        settings(PEM, "https://example.com/contact").vapid_subject == "https://example.com/contact"
    )
