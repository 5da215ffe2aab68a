from __future__ import annotations

import pytest

from services.channels import registry
from services.email.__main__ import create_runtime
from services.email.settings import EmailSettings
from services.inapp.settings import InappSettings
from shared.settings import SettingsError


def test_every_channel_has_a_built_in_provider_and_inapp_defaults_to_the_inbox():
    assert {c: registry.known(c) for c in ("email", "sms", "webpush", "inapp")} == {
        "email": ["dev", "smtp"],
        "sms": ["dev", "twilio"],
        "webpush": ["dev", "vapid"],
        "inapp": ["inbox"],
    }
    assert InappSettings().provider == "inbox"
    assert EmailSettings().provider == "dev"


def test_an_unknown_provider_stops_start_up_naming_the_choices():
    with pytest.raises(
        SettingsError, match=r"SENDMESH_PROVIDER: no email provider 'mailgun'.*dev, smtp"
    ):
        create_runtime(EmailSettings(provider="mailgun"))


def test_a_provider_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):
        registry.register("email", "dev", registry.BUILT_IN[("email", "dev")])
