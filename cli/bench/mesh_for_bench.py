"""A mesh of the bench's own: temp var dir, fresh namespace, free ports."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cli.bench.runner import Target
from cli.bus_admin import BrokerNotAnswering, delete_namespace
from cli.console import err
from cli.keyfile import ensure_dev_key
from cli.launcher import Launcher
from cli.mesh import DEV_TENANT, MeshConfig, free_port_block
from shared.auth import hash_api_key


def bench_mesh_config(
    amqp_url: str, root: Path, extra_env: Mapping[str, Mapping[str, str]] | None = None
) -> MeshConfig:
    return MeshConfig(
        var_dir=root / "var",
        namespace="bench" + uuid.uuid4().hex[:8],
        base_port=free_port_block(),
        metrics_base_port=free_port_block(),
        amqp_url=amqp_url,
        log_format="json",
        # Logging every message would be measured too.
        log_level="warning",
        extra_env=dict(extra_env or {}),
    )


@contextmanager
def bench_mesh(
    amqp_url: str, extra_env: Mapping[str, Mapping[str, str]] | None = None
) -> Iterator[tuple[Target, Launcher]]:
    """Start the mesh, yield where it is, stop it and remove its queues and files.

    `extra_env`: per service, variables on top of the mesh's (providers, say).

    Its logs are kept (and their place printed) when something went wrong.
    """
    root = Path(tempfile.mkdtemp(prefix="sendmesh-bench-"))
    cfg = bench_mesh_config(amqp_url, root, extra_env)
    key = ensure_dev_key(cfg.var_dir)
    launcher = Launcher(cfg, {hash_api_key(key): DEV_TENANT}, log_dir=root / "logs")
    clean = False
    try:
        err.print(
            f"starting a mesh for the bench (namespace {cfg.namespace}, intake {cfg.address('intake')})"
        )
        launcher.start()
        pids = {child.name: child.process.pid for child in launcher.children}
        target = Target(
            cfg.address("intake"),
            amqp_url,
            cfg.namespace,
            key,
            profile=cfg.address("profile"),
            frequency=cfg.address("frequency"),
            pids=pids,
        )
        yield target, launcher
        clean = True
    finally:
        codes = launcher.stop()
        clean = clean and all(code == 0 for code in codes.values())
        remove_namespace(amqp_url, cfg.namespace)
        if clean:
            shutil.rmtree(root, ignore_errors=True)
        else:
            err.print(f"mesh logs kept in {root / 'logs'}")


def remove_namespace(amqp_url: str, namespace: str) -> None:
    try:
        asyncio.run(delete_namespace(amqp_url, namespace))
    except (BrokerNotAnswering, OSError) as why:
        err.print(f"could not delete the bench's queues ({namespace}.*): {why}")
