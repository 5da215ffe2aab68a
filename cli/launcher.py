"""Starts the mesh as child processes, waits until it serves, stops it cleanly.

Used by `sendmesh run`, `sendmesh bench` and the end-to-end tests, so all three
start the mesh the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urlsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.bus_admin import BrokerNotAnswering, check_answers
from cli.mesh import SERVICES, MeshConfig, ServiceSpec, busy_ports, service_command, service_env

SERVING = health_pb2.HealthCheckResponse.SERVING
LOG_TAIL_LINES = 15


class MeshError(Exception):
    """A service failed to start, or died; the message names it."""


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def name(self) -> str:
        return self.spec.name

    def exit_code(self) -> int | None:
        return self.process.poll()


class Launcher:
    def __init__(
        self,
        cfg: MeshConfig,
        api_keys: Mapping[str, str],
        *,
        log_dir: Path | None = None,
        start_timeout_s: float = 60.0,
        grace_s: float = 30.0,
        python: str = sys.executable,
        die_with_parent: bool = True,
    ) -> None:
        self.cfg = cfg
        self._api_keys = dict(api_keys)
        # The services' key for calling each other, new for every run: one the
        # environment already sets (SENDMESH_INTERNAL_KEY) is kept.
        self._internal_key = os.environ.get("SENDMESH_INTERNAL_KEY") or secrets.token_urlsafe(32)
        # None: children write to our own stdout/stderr.
        self._log_dir = log_dir
        self._start_timeout_s = start_timeout_s
        self.grace_s = grace_s
        self._python = python
        # PR_SET_PDEATHSIG runs Python in the forked child before exec: unsafe
        # in a caller with threads of its own (a gRPC client in a test), which
        # may then crash the child. Such a caller stops the children itself.
        self._preexec = _die_with_parent if die_with_parent else None
        self.children: list[Child] = []
        self._log_files: list[IO[bytes]] = []
        # Set by a second Ctrl-C: stop waiting for graceful exits.
        self.hurry = False

    def start(self) -> None:
        """Spawn every service and wait until all answer health SERVING.

        On any failure every child is stopped before MeshError is raised.
        """
        check_broker_reachable(self.cfg.amqp_url)
        check_ports_free(self.cfg)
        try:
            for spec in SERVICES:
                self.children.append(self._spawn(spec))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, spec: ServiceSpec) -> Child:
        env = service_env(self.cfg, spec.name, self._api_keys, os.environ, self._internal_key)
        log_path, output = self._output_for(spec.name)
        process = subprocess.Popen(
            service_command(self._python, spec.name),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            # Own session: a terminal's Ctrl-C reaches only us, and we stop the
            # children in order instead of all at once.
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        return Child(spec, process, log_path)

    def _output_for(self, name: str) -> tuple[Path | None, IO[bytes] | None]:
        if self._log_dir is None:
            return None, None
        self._log_dir.mkdir(parents=True, exist_ok=True)
        path = self._log_dir / f"{name}.log"
        handle = path.open("ab")
        self._log_files.append(handle)
        return path, handle

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._start_timeout_s
        pending = list(self.children)
        while pending:
            for child in list(pending):
                self._raise_if_exited(child, "during start-up")
                if is_serving(self.cfg.address(child.name)):
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise MeshError(
                    f"not SERVING after {self._start_timeout_s:.0f} s: {names}"
                    + self._tails(pending)
                )
            if pending:
                time.sleep(0.2)

    def _raise_if_exited(self, child: Child, when: str) -> None:
        code = child.exit_code()
        if code is not None:
            raise MeshError(f"{child.name} exited with code {code} {when}" + self._tails([child]))

    def check_alive(self) -> None:
        """Raise MeshError naming the first child that has exited."""
        for child in self.children:
            self._raise_if_exited(child, "unexpectedly")

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.exit_code() is not None), None)

    def respawn(self, name: str) -> Child:
        """Start `name` again, with the same settings, once its process has
        exited (one step of a rolling restart). Does not wait for SERVING."""
        index = next(i for i, c in enumerate(self.children) if c.name == name)
        old = self.children[index]
        if old.exit_code() is None:
            raise MeshError(f"{name} is still running (pid {old.process.pid})")
        self.children[index] = self._spawn(old.spec)
        return self.children[index]

    def stop(self) -> dict[str, int]:
        """SIGTERM every child, wait up to the grace period, then kill; exit codes by name."""
        for child in self.children:
            if child.exit_code() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while any(c.exit_code() is None for c in self.children):
            if time.monotonic() > deadline or self.hurry:
                break
            time.sleep(0.1)
        for child in self.children:
            if child.exit_code() is None:
                child.process.kill()
                child.process.wait()
        for handle in self._log_files:
            handle.close()
        self._log_files.clear()
        return {c.name: c.process.returncode for c in self.children}

    def _tails(self, children: list[Child]) -> str:
        return "".join(log_tail(c.log_path, c.name) for c in children if c.log_path)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def is_serving(address: str, timeout_s: float = 1.0) -> bool:
    """True when the overall ("" = readiness) health status is SERVING."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return False
    return bool(reply.status == SERVING)


def check_broker_reachable(amqp_url: str) -> None:
    parts = urlsplit(amqp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except OSError:
        raise MeshError(
            f"RabbitMQ is not reachable at {host}:{port}: run `make broker` or pass --amqp-url"
        ) from None
    try:
        asyncio.run(check_answers(amqp_url))
    except BrokerNotAnswering as why:
        raise MeshError(f"{host}:{port}: {why}") from None
    except Exception as why:
        raise MeshError(f"RabbitMQ at {host}:{port} refused the connection: {why!r}") from None


def check_ports_free(cfg: MeshConfig) -> None:
    busy = busy_ports(cfg)
    if busy:
        listed = ", ".join(f"{port} ({what})" for what, port in busy)
        raise MeshError(
            f"ports in use: {listed}. Is another mesh running? "
            "Stop it, or pass --base-port/--metrics-base-port"
        )


def log_tail(path: Path, name: str, lines: int = LOG_TAIL_LINES) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        if text:
            body = "\n".join(f"  | {line}" for line in text)
            return f"\n--- last lines of {name} ({path}):\n{body}"
    return ""


def _load_prctl() -> Callable[[], None] | None:
    """PR_SET_PDEATHSIG: a child gets SIGTERM if the launcher itself is killed.

    Loaded once here, so the child between fork and exec only makes one call.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return die_with_parent


_die_with_parent = _load_prctl()
