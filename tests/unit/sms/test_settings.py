from __future__ import annotations

import pytest

from services.sms.settings import SmsSettings
from shared.settings import SettingsError, load_settings

SID = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "0123456789abcdef" * 2


def test_the_dev_provider_needs_no_credentials():
    settings = load_settings(SmsSettings)
    assert (settings.sms_api_base, settings.sms_default_region) == ("https://api.twilio.com", "US")


def test_twilio_without_credentials_stops_start_up_listing_every_missing_key():
    with pytest.raises(SettingsError) as raised:
        load_settings(SmsSettings, provider="twilio")
    message = str(raised.value)
    for key in ("SMS_ACCOUNT_SID", "SMS_AUTH_TOKEN", "SMS_MESSAGING_SERVICE_SID"):
        assert f"SENDMESH_{key}" in message


def test_twilio_takes_a_from_number_or_a_messaging_service_not_both():
    base = {"provider": "twilio", "sms_account_sid": SID, "sms_auth_token": "t"}
    assert load_settings(SmsSettings, **base, sms_from_number="+15005550006")
    assert load_settings(SmsSettings, **base, sms_messaging_service_sid=SERVICE)
    with pytest.raises(SettingsError, match=r"SENDMESH_SMS_MESSAGING_SERVICE_SID: .*not both"):
        load_settings(
            SmsSettings, **base, sms_from_number="+15005550006", sms_messaging_service_sid=SERVICE
        )


def test_the_auth_token_never_shows_in_repr():
    settings = SmsSettings(sms_auth_token="s3cr3t-token")
    assert "s3cr3t-token" not in repr(settings)
    assert "s3cr3t-token" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sms_api_base", "http://api.twilio.com"),
        ("sms_api_base", "ftp://127.0.0.1"),
        ("sms_account_sid", "AC123"),
        ("sms_from_number", "0044 7911"),
        ("sms_default_region", "XX"),
        ("sms_concurrency", 0),
        ("sms_timeout_s", 0),
        ("sms_status_callback_url", "hooks.example/sms"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(key, value):
    with pytest.raises(SettingsError, match=f"SENDMESH_{key.upper()}"):
        load_settings(SmsSettings, **{key: value})


def test_plain_http_is_allowed_only_for_a_local_provider_and_a_trailing_slash_is_dropped():
    settings = load_settings(SmsSettings, sms_api_base="http://127.0.0.1:8080/")
    assert settings.sms_api_base == "http://127.0.0.1:8080"
    assert load_settings(SmsSettings, sms_default_region="gb").sms_default_region == "GB"
