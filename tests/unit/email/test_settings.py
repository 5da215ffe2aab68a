from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.email.providers.smtp import SmtpEmailProvider
from services.email.settings import EmailSettings
from shared.settings import SettingsError, load_settings

SMTP = {
    "provider": "smtp",
    "from_address": "news@shop.example",
    "unsubscribe_url": "https://shop.example/u/{delivery_id}",
}


def error_of(**values: Any) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(EmailSettings, **values)
    return str(caught.value)


def test_the_smtp_provider_needs_a_sender_and_an_unsubscribe_url_and_says_both():
    error = error_of(provider="smtp")

    assert "SENDMESH_FROM_ADDRESS: Value error, required when SENDMESH_PROVIDER=smtp" in error
    assert "SENDMESH_UNSUBSCRIBE_URL: Value error, required when SENDMESH_PROVIDER=smtp" in error


def test_the_dev_provider_needs_no_smtp_settings():
    assert load_settings(EmailSettings).provider == "dev"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://shop.example/u/{delivery_id}", "must be https"),
        ("ftp://shop.example/u/{delivery_id}", "must be an http(s) URL"),
        ("https://shop.example/u", "must contain {delivery_id}"),
        ("https://shop.example/u/{delivery_id}/{email}", "unknown placeholder 'email'"),
        ("https://shop.example/u/{delivery_id!r}", "no format spec"),
        ("https://shop.example/u/{delivery_id}\r\nBcc: x", "no spaces"),
        ("https://bücher.example/u/{delivery_id}", "printable ASCII"),
    ],
)
def test_a_bad_unsubscribe_url_stops_the_start(url: str, complaint: str):
    assert complaint in error_of(**(SMTP | {"unsubscribe_url": url}))


def test_plain_http_unsubscribe_is_allowed_only_on_this_machine():
    url = "http://127.0.0.1:8080/u/{delivery_id}?t={tenant_id}"
    assert load_settings(EmailSettings, **(SMTP | {"unsubscribe_url": url})).unsubscribe_url == url


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"from_address": "News <news@shop.example>"}, "SENDMESH_FROM_ADDRESS"),
        ({"from_name": "News\r\nBcc: x@example.com"}, "SENDMESH_FROM_NAME"),
        ({"unsubscribe_mailto": "not an address"}, "SENDMESH_UNSUBSCRIBE_MAILTO"),
        ({"message_id_domain": "bad domain"}, "SENDMESH_MESSAGE_ID_DOMAIN"),
        ({"smtp_starttls": True, "smtp_tls": True}, "SENDMESH_SMTP_TLS"),
        ({"smtp_username": "relay"}, "SENDMESH_SMTP_USERNAME"),
        ({"dkim_selector": "s1"}, "SENDMESH_DKIM_PRIVATE_KEY_FILE"),
    ],
)
def test_each_inconsistent_smtp_setting_is_named(values: dict[str, Any], key: str):
    assert f"  {key}: " in error_of(**(SMTP | values))


def test_dkim_is_on_with_all_three_settings(tmp_path: Path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\n")
    values = {
        "dkim_selector": "s1",
        "dkim_domain": "shop.example",
        "dkim_private_key_file": key_file,
    }

    assert load_settings(EmailSettings, **(SMTP | values)).dkim_private_key_file == key_file


def test_the_password_never_shows_in_repr():
    settings = load_settings(
        EmailSettings, **SMTP, smtp_starttls=True, smtp_username="relay", smtp_password="hunter2"
    )

    assert "hunter2" not in repr(settings)
    assert settings.smtp_password.get_secret_value() == "hunter2"


def test_the_message_id_domain_defaults_to_the_sender_domain():
    assert load_settings(EmailSettings, **SMTP).resolved_message_id_domain() == "shop.example"


def test_a_dkim_key_dkimpy_cannot_read_stops_the_start(tmp_path: Path):
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    values = {
        "dkim_selector": "s1",
        "dkim_domain": "shop.example",
        "dkim_private_key_file": key_file,
    }
    settings = load_settings(EmailSettings, **(SMTP | values))

    with pytest.raises(SettingsError, match="SENDMESH_DKIM_PRIVATE_KEY_FILE: unusable DKIM key"):
        SmtpEmailProvider.from_settings(settings)
