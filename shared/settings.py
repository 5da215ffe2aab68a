"""Typed, frozen settings, read once at start-up from SENDMESH_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service reads. A service subclasses it for its own keys."""

    model_config = SettingsConfigDict(env_prefix="SENDMESH_", frozen=True, extra="ignore")

    service: str = "sendmesh"
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=1, le=65535)
    # 0 turns the /metrics endpoint off.
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # Prefix of every exchange and queue, so meshes can share a broker.
    bus_namespace: str = Field("sendmesh", pattern=r"^[a-z][a-z0-9_-]{0,40}$")
    # Retry back-off steps, one delay queue each (seconds).
    retry_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    # Attempts before a message goes to the stage's dead-letter queue.
    max_attempts: int = Field(8, ge=1, le=100)
    prefetch: int = Field(512, ge=1, le=10_000)
    batch_size: int = Field(256, ge=1, le=5_000)
    # A batch also stops growing at this many bytes of message bodies: one
    # fan-out envelope carries hundreds of deliveries, so counting messages
    # alone let a batch decode tens of thousands of them at once.
    batch_max_bytes: int = Field(1_000_000, ge=1_024, le=256_000_000)
    publish_timeout_s: float = Field(15.0, gt=0)

    # Unset: SQLite at var/<service>.db.
    database_url: SecretStr | None = None
    var_dir: Path = Path("var")

    # sha256(api key) hex -> tenant id. Keys themselves are never stored.
    api_keys: dict[str, str] = Field(default_factory=dict)
    # The mesh's own services calling each other (a channel worker asking the
    # profile service) present this key and name the tenant they act for in
    # `x-sendmesh-tenant`. Unset: no service may act for a tenant.
    internal_key: SecretStr | None = None

    # TLS for the gRPC port; with a client CA, clients must present a cert (mTLS).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # Calls to the mesh's other services (shared/grpc/client.py) use TLS when
    # this is set, trusting only this CA, and present the cert and key above
    # as the client certificate when both are set (for servers that want mTLS).
    # Its own setting: the client CA above may be unset (TLS without mTLS).
    tls_server_ca_file: Path | None = None

    # OpenTelemetry traces. Off: no tracer and no exporter are built.
    tracing_enabled: bool = False
    # otlp: to a collector over gRPC; console: one JSON line per span on
    # stderr; file: JSON lines to `tracing_file`.
    tracing_exporter: Literal["otlp", "console", "file"] = "otlp"
    # The OTLP collector; http:// means no TLS.
    tracing_endpoint: str = "http://127.0.0.1:4317"
    # Unset: <var_dir>/traces/<service>.jsonl.
    tracing_file: Path | None = None
    # Share of new traces recorded; a continued trace follows its parent's choice.
    tracing_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    shutdown_grace_s: float = Field(20.0, gt=0)

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite+aiosqlite:///{self.var_dir / (self.service + '.db')}"


S = TypeVar("S", bound=ServiceSettings)


class SettingsError(SystemExit):
    """Raised at start-up with every bad key listed; exits the process."""


def load_settings(cls: type[S], **overrides: object) -> S:
    """Read settings, or stop with one line per bad SENDMESH_ variable."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = "SENDMESH_" + "_".join(str(p) for p in e["loc"][:1]).upper()
            lines.append(f"  {key}: {e['msg']}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None
