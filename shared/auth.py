"""Per-tenant API keys: hashed at rest, checked on every call."""

from __future__ import annotations

import contextvars
import hashlib
import secrets

_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("sendmesh_tenant")

KEY_PREFIX = "smk_"


def new_api_key() -> str:
    """A high-entropy key; only its hash is ever stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 cannot be brute-forced.
    return hashlib.sha256(key.encode()).hexdigest()


def tenant_for_key(key: str, hashed_keys: dict[str, str]) -> str | None:
    return hashed_keys.get(hash_api_key(key))


def key_from_metadata(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    """`authorization: Bearer <key>` or `x-api-key: <key>`."""
    for name, value in metadata or ():
        text = value.decode() if isinstance(value, bytes) else value
        if name == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return None


TENANT_HEADER = "x-sendmesh-tenant"


def internal_metadata(internal_key: str, tenant: str) -> tuple[tuple[str, str], ...]:
    """What one of the mesh's services sends to act for `tenant`."""
    return (("authorization", f"Bearer {internal_key}"), (TENANT_HEADER, tenant))


def tenant_from_metadata(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for name, value in metadata or ():
        if name == TENANT_HEADER:
            text = value.decode() if isinstance(value, bytes) else value
            return text.strip() or None
    return None


def set_current_tenant(tenant: str) -> contextvars.Token[str]:
    return _tenant.set(tenant)


def current_tenant() -> str:
    """The caller's tenant; every read and write is scoped by it."""
    return _tenant.get()
