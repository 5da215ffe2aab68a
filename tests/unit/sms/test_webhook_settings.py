from __future__ import annotations

import pytest

from services.sms.settings import SmsSettings
from shared.settings import SettingsError, load_settings


def test_webhooks_are_off_and_sending_unlimited_by_default():
    settings = load_settings(SmsSettings)
    assert (settings.webhook_port, settings.rate_per_s, settings.rate_burst) == (0, 0.0, 0)


def test_webhooks_without_the_auth_token_stop_start_up_naming_it():
    with pytest.raises(SettingsError, match=r"SENDMESH_SMS_AUTH_TOKEN: .*SENDMESH_WEBHOOK_PORT"):
        load_settings(SmsSettings, webhook_port=8088)
    assert load_settings(SmsSettings, webhook_port=8088, sms_auth_token="t").webhook_port == 8088


def test_the_public_url_is_a_bare_http_base_and_rates_are_not_negative():
    with pytest.raises(SettingsError) as raised:
        load_settings(
            SmsSettings, webhook_public_url="hooks.example.com/?x=1", rate_per_s=-1, rate_burst=-2
        )
    for key in ("WEBHOOK_PUBLIC_URL", "RATE_PER_S", "RATE_BURST"):
        assert f"SENDMESH_{key}" in str(raised.value)
