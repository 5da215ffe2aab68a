from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    service: str = "profile"
    grpc_port: int = 50052
    metrics_port: int = 9102
    # Deliveries per envelope on the eligibility queue: a fan-out pays one
    # broker hop per this many recipients x channels, not one per recipient.
    envelope_deliveries: int = Field(500, ge=1, le=10_000)
    # Candidate users per page of a topic or segment audience: what one plan
    # message resolves (and holds in memory) before it passes the rest on.
    audience_page_size: int = Field(5000, ge=1, le=20_000)
    # Tests and local benches only: accept web push subscriptions on plain
    # http (RFC 8030 push services are https; the web push worker's own
    # SENDMESH_WEBPUSH_ALLOW_HTTP must allow sending to them too).
    webpush_allow_http: bool = False
