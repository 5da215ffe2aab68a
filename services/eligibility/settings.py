from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings

# Only good for development and tests: anyone can read it here.
DEV_SUPPRESSION_HASH_KEY = "sendmesh-dev-suppression-key-change-me"


class EligibilitySettings(ServiceSettings):
    service: str = "eligibility"
    grpc_port: int = 50053
    metrics_port: int = 9103

    # HMAC key of the suppression list's contact hashes. Set it in production
    # (and never change it: every stored hash is keyed by it).
    suppression_hash_key: SecretStr = Field(SecretStr(DEV_SUPPRESSION_HASH_KEY), min_length=16)
    # Marketing without any consent statement is suppressed (opt-in). False:
    # opt-out, only a withdrawal stops it.
    marketing_requires_opt_in: bool = True
    # How long the consumer reuses a tenant's quiet-hours policy.
    quiet_hours_cache_ttl_s: float = Field(30.0, ge=0, le=3600)

    def hash_key(self) -> bytes:
        return self.suppression_hash_key.get_secret_value().encode()
