"""Find (or start) the real servers the tests talk to: RabbitMQ, PostgreSQL.

Nothing here is mocked. A server that cannot be found or started fails the
test run with a message that says how to get one; it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

AMQP_URL = os.environ.get("SENDMESH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get(
    "SENDMESH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_rabbitmq() -> str:
    if not port_open("127.0.0.1", 5672) and "SENDMESH_TEST_AMQP_URL" not in os.environ:
        pytest.fail(
            "RabbitMQ is not reachable on 127.0.0.1:5672: run `make broker` "
            "(starts or installs it) or set SENDMESH_TEST_AMQP_URL",
            pytrace=False,
        )
    return AMQP_URL


class PostgresServer:
    """The machine's PostgreSQL if one answers, else a private one in a temp dir."""

    def __init__(self) -> None:
        self.url = PG_URL
        self._datadir: Path | None = None

    def start(self) -> str:
        if port_open("127.0.0.1", 5432) or "SENDMESH_TEST_POSTGRES_URL" in os.environ:
            return self.url
        initdb = shutil.which("initdb") or _pg_bin("initdb")
        pg_ctl = shutil.which("pg_ctl") or _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.fail(
                "PostgreSQL is not reachable on 127.0.0.1:5432 and initdb is not installed: "
                "run `make postgres` or set SENDMESH_TEST_POSTGRES_URL",
                pytrace=False,
            )
        port = free_port()
        self._datadir = Path(tempfile.mkdtemp(prefix="sendmesh-pg-"))
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if run_as:
            shutil.chown(self._datadir, "postgres")
        subprocess.run(
            [*run_as, initdb, "-D", str(self._datadir), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                pg_ctl,
                "-D",
                str(self._datadir),
                "-w",
                "-o",
                f"-p {port} -k /tmp -c listen_addresses=127.0.0.1",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def stop(self) -> None:
        if self._datadir is None:
            return
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        pg_ctl = shutil.which("pg_ctl") or _pg_bin("pg_ctl") or "pg_ctl"
        subprocess.run(
            [*run_as, pg_ctl, "-D", str(self._datadir), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(self._datadir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


async def create_pg_database(admin_url: str) -> str:
    """A fresh, empty database; returns its name."""
    import asyncpg

    name = "sendmesh_test_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def asyncpg_url(admin_url: str, name: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
