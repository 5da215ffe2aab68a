from __future__ import annotations

import re
from string import Formatter
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, ValidationInfo, field_validator

from services.channels.settings import ChannelSettings
from services.email.message import UNSUBSCRIBE_FIELDS, is_address, is_domain, is_header_safe

# The provider whose keys are required below (its name in the registry).
SMTP = "smtp"
# Plain http is only for an unsubscribe endpoint on this machine (tests):
# RFC 8058 one-click needs https anywhere a mailbox provider will POST to it.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class EmailSettings(ChannelSettings):
    service: str = "email"
    grpc_port: int = 50055
    metrics_port: int = 9105

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_starttls: bool = False
    # Implicit TLS from the first byte (port 465); exclusive with STARTTLS.
    smtp_tls: bool = False
    # A private CA to trust instead of the system's (a relay inside the cluster).
    smtp_ca_file: FilePath | None = None
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_timeout_s: float = Field(30.0, gt=0, le=600)

    from_address: str = Field("", validate_default=True)
    from_name: str = ""
    # Empty: the domain of from_address.
    message_id_domain: str = ""
    # Required by smtp: marketing mail must carry a one-click unsubscribe.
    unsubscribe_url: str = Field("", validate_default=True)
    unsubscribe_mailto: str = ""

    # DKIM is on when all three are set.
    dkim_selector: str = Field("", pattern=r"^([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)?$")
    dkim_domain: str = ""
    dkim_private_key_file: FilePath | None = Field(None, validate_default=True)

    @field_validator("smtp_tls")
    @classmethod
    def _one_tls_mode(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("smtp_starttls"):
            raise ValueError("set this or SENDMESH_SMTP_STARTTLS, not both")
        return value

    @field_validator("smtp_username")
    @classmethod
    def _password_only_over_tls(cls, value: str, info: ValidationInfo) -> str:
        if value and not (info.data.get("smtp_starttls") or info.data.get("smtp_tls")):
            raise ValueError("needs SENDMESH_SMTP_STARTTLS or SENDMESH_SMTP_TLS")
        return value

    @field_validator("from_address")
    @classmethod
    def _from_is_an_address(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.data.get("provider") == SMTP:
            raise ValueError(f"required when SENDMESH_PROVIDER={SMTP}")
        if value and not is_address(value):
            raise ValueError("must be a plain ASCII address, e.g. news@example.com")
        return value

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto_is_an_address(cls, value: str) -> str:
        if value and not is_address(value):
            raise ValueError("must be a plain ASCII address, e.g. unsubscribe@example.com")
        return value

    @field_validator("from_name")
    @classmethod
    def _name_fits_a_header(cls, value: str) -> str:
        if not is_header_safe(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("message_id_domain", "dkim_domain")
    @classmethod
    def _is_a_domain(cls, value: str) -> str:
        if value and not is_domain(value):
            raise ValueError("must be a domain name, e.g. mail.example.com")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _unsubscribe_is_a_url_template(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            if info.data.get("provider") == SMTP:
                raise ValueError(f"required when SENDMESH_PROVIDER={SMTP}")
            return value
        check_url_template(value)
        return value

    @field_validator("dkim_private_key_file")
    @classmethod
    def _dkim_all_or_nothing(cls, value: FilePath | None, info: ValidationInfo) -> FilePath | None:
        given = [
            bool(info.data.get("dkim_selector")),
            bool(info.data.get("dkim_domain")),
            bool(value),
        ]
        if any(given) and not all(given):
            raise ValueError("set with SENDMESH_DKIM_SELECTOR and SENDMESH_DKIM_DOMAIN, or none")
        return value

    def resolved_message_id_domain(self) -> str:
        return self.message_id_domain or self.from_address.rpartition("@")[2]


def check_url_template(value: str) -> None:
    """An http(s) URL whose only placeholders are UNSUBSCRIBE_FIELDS, with {delivery_id}."""
    if not re.fullmatch(r"[\x21-\x7e]{1,500}", value):
        raise ValueError("must be one URL of at most 500 printable ASCII characters, no spaces")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in LOCAL_HOSTS:
        raise ValueError("must be https (plain http only for a local endpoint)")
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(value)]
    except ValueError as err:
        raise ValueError(f"is not a valid template: {err}") from None
    if any(spec or conv for name, spec, conv in fields if name is not None):
        raise ValueError("placeholders take no format spec or conversion")
    names = {name for name, _, _ in fields if name is not None}
    unknown = names - UNSUBSCRIBE_FIELDS
    if unknown:
        raise ValueError(f"unknown placeholder {sorted(unknown)[0]!r}")
    if "delivery_id" not in names:
        raise ValueError("must contain {delivery_id}, so a click names its delivery")
