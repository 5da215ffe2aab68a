from __future__ import annotations

import re
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from services.channels.settings import ChannelSettings

# The provider whose keys are required below (its name in the registry).
TWILIO = "twilio"
# Plain http is only for a provider on this machine (tests, a local peer):
# anywhere else it would carry the auth token in clear.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
SENDER_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


class SmsSettings(ChannelSettings):
    service: str = "sms"
    grpc_port: int = 50056
    metrics_port: int = 9106

    sms_api_base: str = "https://api.twilio.com"
    sms_account_sid: str = Field("", pattern=r"^(AC[0-9a-fA-F]{32})?$", validate_default=True)
    sms_auth_token: SecretStr = Field(SecretStr(""), validate_default=True)
    # E.164, or an alphanumeric sender id where the destination allows one.
    sms_from_number: str = ""
    sms_messaging_service_sid: str = Field(
        "", pattern=r"^(MG[0-9a-fA-F]{32})?$", validate_default=True
    )
    sms_status_callback_url: str = Field("", pattern=r"^(https?://\S+)?$")
    # Region assumed for numbers written without a +country code.
    sms_default_region: str = "US"
    sms_timeout_s: float = Field(10.0, gt=0, le=120)
    # Requests in flight at once, per worker process.
    sms_concurrency: int = Field(8, ge=1, le=256)

    @field_validator("sms_api_base")
    @classmethod
    def _api_base_is_https_or_local(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
            raise ValueError("must be https (plain http only for a local provider)")
        return value.rstrip("/")

    @field_validator("sms_from_number")
    @classmethod
    def _sender_is_a_number_or_an_id(cls, value: str) -> str:
        # An all-digit id would be read as a (wrong) number; an id needs a letter.
        if not value or E164.match(value) or SENDER_ID.match(value):
            return value
        raise ValueError("must be an E.164 number (+15551234567) or a 1-11 character sender id")

    @field_validator("sms_default_region")
    @classmethod
    def _region_is_known(cls, value: str) -> str:
        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be a region code phonenumbers knows, e.g. US, GB, FR")
        return value.upper()

    @field_validator("sms_account_sid", "sms_auth_token")
    @classmethod
    def _required_by_twilio(cls, value: str | SecretStr, info: ValidationInfo) -> str | SecretStr:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if info.data.get("provider") == TWILIO and not text:
            raise ValueError(f"required when SENDMESH_PROVIDER={TWILIO}")
        return value

    @field_validator("sms_auth_token")
    @classmethod
    def _required_by_webhooks(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        # Webhooks are verified with it: without it every one would be refused.
        if info.data.get("webhook_port") and not value.get_secret_value():
            raise ValueError("required when SENDMESH_WEBHOOK_PORT is set (it signs the webhooks)")
        return value

    @field_validator("sms_messaging_service_sid")
    @classmethod
    def _one_sender(cls, value: str, info: ValidationInfo) -> str:
        # Twilio accepts both and then checks one against the other; asking for
        # exactly one keeps the sender a reader of the settings expects.
        from_number = info.data.get("sms_from_number", "")
        if info.data.get("provider") != TWILIO:
            return value
        if value and from_number:
            raise ValueError("set this or SENDMESH_SMS_FROM_NUMBER, not both")
        if not value and not from_number and "sms_from_number" in info.data:
            raise ValueError(f"this or SENDMESH_SMS_FROM_NUMBER is required by {TWILIO}")
        return value
