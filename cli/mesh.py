"""The mesh's services, their ports, and the environment each one runs with.

Pure: nothing here starts a process (that is `cli.launcher`).
"""

from __future__ import annotations

import json
import random
import shlex
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: str
    consumes: tuple[str, ...]
    publishes: tuple[str, ...]


# Table order is port order: a service's ports are the base ports plus its index.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "intake", "accepts intents, stores them, reports status", ("events.intake",), ("plan",)
    ),
    ServiceSpec(
        "profile",
        "resolves recipients, attaches profiles; SMS keyword consent",
        ("plan", "feedback.profile"),
        ("eligibility", "events"),
    ),
    ServiceSpec(
        "eligibility",
        "consent, suppression, behaviour rules, quiet hours",
        ("eligibility", "feedback.eligibility"),
        ("frequency", "deferred", "events"),
    ),
    ServiceSpec(
        "frequency",
        "caps; chooses channels",
        ("frequency", "release", "control.frequency"),
        ("send.<channel>", "deferred", "events"),
    ),
    ServiceSpec("email", "sends email", ("send.email", "control.email"), ("events",)),
    ServiceSpec("sms", "sends SMS", ("send.sms", "control.sms"), ("events",)),
    ServiceSpec("webpush", "sends web push", ("send.webpush", "control.webpush"), ("events",)),
    ServiceSpec(
        "inapp",
        "writes the in-app inbox, serves it",
        ("send.inapp", "control.inapp"),
        ("events", "inbox"),
    ),
    ServiceSpec(
        "scheduler",
        "holds deferred deliveries until due",
        ("deferred", "control.scheduler"),
        ("plan", "eligibility", "frequency", "send.<channel>", "events"),
    ),
)
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

DEFAULT_VAR_DIR = Path("var")
DEFAULT_NAMESPACE = "sendmesh"
DEFAULT_BASE_PORT = 50051
DEFAULT_METRICS_BASE_PORT = 9101
DEFAULT_HOST = "127.0.0.1"
DEFAULT_AMQP_URL: str = ServiceSettings.model_fields["amqp_url"].default.get_secret_value()
DEV_TENANT = "dev"


@dataclass(frozen=True)
class MeshConfig:
    var_dir: Path = DEFAULT_VAR_DIR
    namespace: str = DEFAULT_NAMESPACE
    base_port: int = DEFAULT_BASE_PORT
    metrics_base_port: int = DEFAULT_METRICS_BASE_PORT
    amqp_url: str = DEFAULT_AMQP_URL
    host: str = DEFAULT_HOST
    log_format: str = "console"
    log_level: str = "info"
    # Service -> variables set on top of everything else (the bench points the
    # channel workers at its local provider peers this way).
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def offset(self, service: str) -> int:
        return SERVICE_NAMES.index(service)

    def grpc_port(self, service: str) -> int:
        return self.base_port + self.offset(service)

    def metrics_port(self, service: str) -> int:
        return self.metrics_base_port + self.offset(service)

    def address(self, service: str) -> str:
        return f"{self.host}:{self.grpc_port(service)}"


def service_env(
    cfg: MeshConfig,
    service: str,
    api_keys: Mapping[str, str],
    inherited: Mapping[str, str],
    internal_key: str = "",
) -> dict[str, str]:
    """The environment of one child: the caller's, with the mesh's settings on top.

    Other SENDMESH_* variables pass through, so a developer can still tune a
    setting (prefetch, providers) for the whole mesh.
    """
    env = dict(inherited)
    env.update(
        {
            "SENDMESH_GRPC_HOST": cfg.host,
            "SENDMESH_GRPC_PORT": str(cfg.grpc_port(service)),
            "SENDMESH_METRICS_PORT": str(cfg.metrics_port(service)),
            "SENDMESH_AMQP_URL": cfg.amqp_url,
            "SENDMESH_BUS_NAMESPACE": cfg.namespace,
            # Absolute, so a child's working directory cannot move its files.
            "SENDMESH_VAR_DIR": str(cfg.var_dir.resolve()),
            "SENDMESH_API_KEYS": json.dumps(dict(api_keys), sort_keys=True),
            "SENDMESH_LOG_FORMAT": cfg.log_format,
            "SENDMESH_LOG_LEVEL": cfg.log_level,
            # Where a service finds the others it calls (Explain, the last
            # behaviour check before a send).
            "SENDMESH_PROFILE_ADDRESS": cfg.address("profile"),
            "SENDMESH_ELIGIBILITY_ADDRESS": cfg.address("eligibility"),
            "SENDMESH_FREQUENCY_ADDRESS": cfg.address("frequency"),
        }
    )
    if internal_key:
        env["SENDMESH_INTERNAL_KEY"] = internal_key
    env.update(cfg.extra_env.get(service, {}))
    return env


def service_command(python: str, service: str) -> list[str]:
    return [python, "-m", f"services.{service}"]


def merged_api_keys(dev_key_hash: str, inherited: Mapping[str, str]) -> dict[str, str]:
    """The dev tenant's key plus any keys already configured in SENDMESH_API_KEYS."""
    raw = inherited.get("SENDMESH_API_KEYS", "")
    keys: dict[str, str] = dict(json.loads(raw)) if raw.strip() else {}
    keys[dev_key_hash] = DEV_TENANT
    return keys


def port_is_free(port: int, host: str = DEFAULT_HOST) -> bool:
    with socket.socket() as s:
        # As the servers bind: a port whose last connections linger in
        # TIME_WAIT (a scrape a moment ago) is free to listen on.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def busy_ports(cfg: MeshConfig) -> list[tuple[str, int]]:
    """(what, port) for every port of the mesh that something already holds."""
    wanted = [(f"{n} gRPC", cfg.grpc_port(n)) for n in SERVICE_NAMES]
    wanted += [(f"{n} metrics", cfg.metrics_port(n)) for n in SERVICE_NAMES]
    return [(what, port) for what, port in wanted if not port_is_free(port, cfg.host)]


def free_port_block(count: int = len(SERVICES), tries: int = 200) -> int:
    """A base port such that base .. base+count-1 are all free now.

    Drawn at random away from the defaults, so tests and benches never take the
    ports of a developer's `make run`.
    """
    for _ in range(tries):
        base = random.randrange(20_000, 45_000)
        if all(port_is_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no block of {count} free ports found")


def address_flags(cfg: MeshConfig, service: str) -> list[str]:
    """`--<service> host:port` when the service is not at its default address."""
    default = MeshConfig(host=cfg.host)
    if cfg.address(service) == default.address(service):
        return []
    return [f"--{service}", cfg.address(service)]


def var_dir_flags(cfg: MeshConfig) -> list[str]:
    """`--var-dir` when the dev key is not in the default place."""
    return [] if cfg.var_dir == DEFAULT_VAR_DIR else ["--var-dir", str(cfg.var_dir)]


def example_send_line(cfg: MeshConfig) -> str:
    args = ["sendmesh", "send", "--user", "u1", "--channel", "inapp"]
    args += ["--title", "Hi", "--body", "Your cart misses you"]
    return shlex.join([*args, *address_flags(cfg, "intake"), *var_dir_flags(cfg)])


def example_inbox_line(cfg: MeshConfig) -> str:
    args = ["sendmesh", "inbox", "u1", *address_flags(cfg, "inapp"), *var_dir_flags(cfg)]
    return shlex.join(args)
