"""Fixtures shared by every test: real broker, real databases, tenants, services."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from cli.bus_admin import delete_namespace
from cli.mesh import SERVICE_NAMES
from shared import db
from shared.auth import hash_api_key, new_api_key
from shared.bus.topology import Topology
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from tests import servers

# Property tests check properties, not speed: on shared, noisy machines a
# slow example must not fail the run (speed is `make bench`'s job).
hypothesis_settings.register_profile("sendmesh", deadline=None)
hypothesis_settings.load_profile("sendmesh")

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


@pytest.fixture(scope="session")
async def session_namespace(amqp_url: str) -> AsyncIterator[str]:
    """One bus namespace for the whole run, deleted at the end.

    Every quorum queue is a Raft group on the broker: declaring and deleting
    a full topology per test churns thousands of them and can wedge the
    broker, so tests share one topology and start from empty queues instead.
    """
    ns = "t" + uuid.uuid4().hex[:10]
    yield ns
    await delete_namespace(amqp_url, Topology(ns, TEST_RETRY_DELAYS))


@pytest.fixture
async def namespace(amqp_url: str, session_namespace: str) -> str:
    """The run's namespace, with every queue of it emptied for this test."""
    topo = Topology(session_namespace, TEST_RETRY_DELAYS)
    conn = await aio_pika.connect(amqp_url)
    async with conn:
        for name in topo.all_queues(SERVICE_NAMES):
            channel = await conn.channel()
            with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                queue = await channel.get_queue(name, ensure=False)
                await queue.purge()  # not declared yet: nothing to empty
    return session_namespace


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each store test runs on SQLite and on PostgreSQL (a database of its own)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    name = await servers.create_pg_database(admin)
    yield servers.asyncpg_url(admin, name)
    await servers.drop_pg_database(admin, name)


@pytest.fixture
async def store_engine(
    database_url: str,
) -> AsyncIterator[Callable[[Sequence[type[SQLModel]]], Awaitable[AsyncEngine]]]:
    """Engines on this test's database (SQLite or PostgreSQL) with the given tables."""
    engines: list[AsyncEngine] = []

    async def make(tables: Sequence[type[SQLModel]]) -> AsyncEngine:
        engine = db.create_engine(database_url)
        await db.create_tables(engine, tables)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await db.dispose(engine)


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
