"""`sendmesh run`: the whole mesh on this machine, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from cli.console import err, fail, out
from cli.keyfile import KeyFileError, dev_key_path, ensure_dev_key
from cli.launcher import Launcher, MeshError
from cli.mesh import (
    DEFAULT_AMQP_URL,
    DEFAULT_BASE_PORT,
    DEFAULT_METRICS_BASE_PORT,
    DEFAULT_NAMESPACE,
    DEFAULT_VAR_DIR,
    MeshConfig,
    example_inbox_line,
    example_send_line,
    merged_api_keys,
)
from shared.auth import hash_api_key

READY_LINE = "mesh ready"


class LogTarget(StrEnum):
    files = "files"
    terminal = "terminal"


class LogFormat(StrEnum):
    console = "console"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived: stop the mesh."""


class StopSignals:
    """First SIGINT/SIGTERM stops gracefully; a second one stops waiting."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.stopping = False

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            self.launcher.hurry = True
            return
        self.stopping = True
        raise Interrupted(signal.Signals(signum).name)


def run(
    var_dir: Annotated[Path, typer.Option(help="SQLite files, outbox, dev key, logs.")] = (
        DEFAULT_VAR_DIR
    ),
    namespace: Annotated[str, typer.Option(help="Prefix of every queue and exchange.")] = (
        DEFAULT_NAMESPACE
    ),
    base_port: Annotated[int, typer.Option(help="gRPC port of intake; others follow.")] = (
        DEFAULT_BASE_PORT
    ),
    metrics_base_port: Annotated[int, typer.Option(help="Metrics port of intake.")] = (
        DEFAULT_METRICS_BASE_PORT
    ),
    amqp_url: Annotated[str, typer.Option(help="RabbitMQ URL.")] = DEFAULT_AMQP_URL,
    logs: Annotated[LogTarget, typer.Option(help="Service logs to <var-dir>/logs/ or here.")] = (
        LogTarget.files
    ),
    log_format: Annotated[LogFormat, typer.Option(help="Service log format.")] = LogFormat.console,
    log_level: Annotated[LogLevel, typer.Option(help="Service log level.")] = LogLevel.info,
    grace: Annotated[float, typer.Option(help="Seconds to wait for a clean stop.")] = 30.0,
    start_timeout: Annotated[float, typer.Option(help="Seconds to wait for SERVING.")] = 60.0,
) -> None:
    """Start every service, wait until all serve, run until stopped."""
    cfg = MeshConfig(
        var_dir,
        namespace,
        base_port,
        metrics_base_port,
        amqp_url,
        log_format=log_format,
        log_level=log_level,
    )
    key = dev_key_or_fail(var_dir)
    launcher = Launcher(
        cfg,
        api_keys_or_fail(key),
        log_dir=var_dir / "logs" if logs is LogTarget.files else None,
        start_timeout_s=start_timeout,
        grace_s=grace,
    )
    signals = StopSignals(launcher)
    signals.install()
    try:
        start_and_supervise(launcher, key, signals)
    except Interrupted as why:
        err.print(f"{why}: stopping the mesh (again to stop waiting)")
        finish(launcher.stop())


def start_and_supervise(launcher: Launcher, key: str, signals: StopSignals) -> None:
    try:
        launcher.start()
    except MeshError as why:
        fail(str(why))
    print_banner(launcher.cfg, key, launcher)
    while True:
        dead = launcher.first_exited()
        if dead is not None:
            signals.stopping = True
            codes = launcher.stop()
            report_exits(codes)
            fail(f"{dead.name} exited unexpectedly with code {codes[dead.name]}; mesh stopped")
        time.sleep(0.2)


def finish(codes: dict[str, int]) -> None:
    report_exits(codes)
    unclean = [name for name, code in codes.items() if code != 0]
    if unclean:
        fail("not every service stopped cleanly: " + ", ".join(unclean))


def report_exits(codes: dict[str, int]) -> None:
    for line in exit_lines(codes):
        err.print(line)


def exit_lines(codes: dict[str, int]) -> list[str]:
    """One line per service, e.g. `intake exited cleanly`, `sms was killed (SIGKILL)`."""
    lines = []
    for name, code in codes.items():
        if code == 0:
            lines.append(f"{name} exited cleanly")
        elif code < 0:
            lines.append(f"{name} was killed ({signal.Signals(-code).name})")
        else:
            lines.append(f"{name} exited with code {code}")
    return lines


def dev_key_or_fail(var_dir: Path) -> str:
    try:
        return ensure_dev_key(var_dir)
    except (KeyFileError, OSError) as why:
        fail(f"cannot use {dev_key_path(var_dir)}: {why}")


def api_keys_or_fail(key: str) -> dict[str, str]:
    try:
        return merged_api_keys(hash_api_key(key), os.environ)
    except (ValueError, TypeError) as why:
        fail(f"SENDMESH_API_KEYS is not a JSON object of hash -> tenant: {why}")


def print_banner(cfg: MeshConfig, key: str, launcher: Launcher) -> None:
    out.print(f"{READY_LINE}: {len(launcher.children)} services serving, namespace {cfg.namespace}")
    out.print(f"intake   {cfg.address('intake')}")
    out.print(f"inbox    {cfg.address('inapp')}")
    out.print(f"api key  {key}  (tenant dev, also in {dev_key_path(cfg.var_dir)})")
    if launcher.children and launcher.children[0].log_path is not None:
        out.print(f"logs     {launcher.children[0].log_path.parent}/<service>.log")
    out.print("try:")
    out.print(f"  {example_send_line(cfg)}")
    out.print(f"  {example_inbox_line(cfg)}")
    out.print("Ctrl-C stops the mesh.")
