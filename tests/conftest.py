"""Fixtures shared by every test: real broker, real databases, tenants, services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest

from shared.auth import hash_api_key, new_api_key
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from tests import servers

S = TypeVar("S", bound=ServiceSettings)

# Short back-off steps so retry paths finish inside a test.
TEST_RETRY_DELAYS = (0.2, 0.5, 1.0)


class Tenants:
    """Two tenants with one API key each, and the hashed table services load."""

    def __init__(self) -> None:
        self.keys = {"acme": new_api_key(), "globex": new_api_key()}
        self.hashed = {hash_api_key(k): t for t, k in self.keys.items()}

    def metadata(self, tenant: str = "acme") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.keys[tenant]}"),)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return servers.require_rabbitmq()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    server = servers.PostgresServer()
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def tenants() -> Tenants:
    return Tenants()


@pytest.fixture
async def namespace(amqp_url: str) -> AsyncIterator[str]:
    """A bus namespace of this test's own; its queues are deleted afterwards."""
    ns = "t" + uuid.uuid4().hex[:10]
    yield ns
    topo = Topology(ns, TEST_RETRY_DELAYS)
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        for name in topo.all_queues(SERVICE_NAMES):
            channel = await conn.channel()
            try:
                await channel.queue_delete(name)
            except Exception:
                pass  # never declared by this test
        channel = await conn.channel()
        for name in (topo.work_exchange, topo.events_exchange, topo.inbox_exchange):
            await channel.exchange_delete(name)


SERVICE_NAMES = (
    "intake",
    "profile",
    "eligibility",
    "frequency",
    "email",
    "sms",
    "webpush",
    "inapp",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    admin = request.getfixturevalue("pg_admin_url")
    return await servers.create_pg_database(admin)


@pytest.fixture
def make_settings(
    amqp_url: str, namespace: str, tenants: Tenants, tmp_path: Path
) -> Callable[..., Any]:
    """Settings for a service under test: its own namespace, files, free port."""

    def make(cls: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            "amqp_url": amqp_url,
            "bus_namespace": namespace,
            "grpc_port": servers.free_port(),
            "metrics_port": 0,
            "var_dir": tmp_path / "var",
            "api_keys": tenants.hashed,
            "retry_delays_s": TEST_RETRY_DELAYS,
            "max_attempts": 3,
            "log_level": "warning",
            "shutdown_grace_s": 5.0,
        }
        values.update(overrides)
        return cls(**values)

    return make


@asynccontextmanager
async def running(runtime: ServiceRuntime) -> AsyncIterator[ServiceRuntime]:
    """Run a service in this process for the duration of the block."""
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()
