"""The whole mesh, started as a developer starts it, driven through the CLI.

`sendmesh run` on free ports, in a namespace and var dir of its own (never the
defaults, so a developer's `make run` is left alone); `sendmesh send`,
`inbox` and `status` as subprocesses with the dev key; then SIGTERM, and every
service must have exited cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.bus_admin import delete_namespace
from cli.commands.run import READY_LINE
from cli.keyfile import dev_key_path
from cli.mesh import SERVICE_NAMES, MeshConfig, free_port_block

SENDMESH = str(Path(sys.executable).parent / "sendmesh")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0

pytestmark = pytest.mark.timeout(240)


class RunningMesh:
    """`sendmesh run` as a child, its output collected line by line."""

    def __init__(self, cfg: MeshConfig) -> None:
        self.cfg = cfg
        args = [
            SENDMESH, "run",
            "--var-dir", str(cfg.var_dir),
            "--namespace", cfg.namespace,
            "--base-port", str(cfg.base_port),
            "--metrics-base-port", str(cfg.metrics_base_port),
            "--amqp-url", cfg.amqp_url,
            "--grace", "30",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _take_line(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.output.append(self.lines.get(timeout=timeout))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._take_line(0.2)
            if any(line.startswith(READY_LINE) for line in self.output):
                return
            if self.process.poll() is not None:
                break
        pytest.fail("mesh did not start:\n" + self.transcript(), pytrace=False)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5.0)  # the pipe ends when the launcher has exited
        if self.process.stdout is not None:
            self.process.stdout.close()
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return code

    def transcript(self) -> str:
        return "\n".join(self.output)


@pytest.fixture
def mesh(tmp_path: Path, amqp_url: str) -> Iterator[RunningMesh]:
    cfg = MeshConfig(
        var_dir=tmp_path / "var",
        namespace="e2e" + uuid.uuid4().hex[:10],
        base_port=free_port_block(),
        metrics_base_port=free_port_block(),
        amqp_url=amqp_url,
    )
    running = RunningMesh(cfg)
    try:
        yield running
    finally:
        running.stop()
        asyncio.run(delete_namespace(amqp_url, cfg.namespace))


def cli(mesh: RunningMesh, *args: str) -> Any:
    """Run `sendmesh <args> --json` with the dev key; its JSON output."""
    key = dev_key_path(mesh.cfg.var_dir).read_text().strip()
    done = subprocess.run(
        [SENDMESH, *args, "--json", "--api-key", key],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def eventually(probe: Callable[[], Any], timeout: float = 10.0) -> Any:
    """The first truthy result of `probe`, polled until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.25)


def test_an_inapp_intent_sent_from_the_cli_reaches_the_inbox_and_is_reported_sent(
    mesh: RunningMesh,
):
    mesh.wait_ready()
    intake, inapp = mesh.cfg.address("intake"), mesh.cfg.address("inapp")
    user = "u-" + uuid.uuid4().hex[:8]

    sent = cli(
        mesh, "send", "--user", user, "--channel", "inapp",
        "--title", "Hi", "--body", "Your cart misses you", "--intake", intake,
    )  # fmt: skip
    assert sent["duplicate"] is False

    def inbox_titles() -> list[str]:
        view = cli(mesh, "inbox", user, "--inapp", inapp)
        return [m["title"] for m in view["messages"] if m["intent_id"] == sent["intent_id"]]

    assert eventually(inbox_titles) == ["Hi"], mesh.transcript()

    def delivery_states() -> list[str]:
        intent = cli(mesh, "status", sent["intent_id"], "--intake", intake)
        states = [d["state"] for d in intent["deliveries"]]
        return states if states == ["sent"] else []

    assert eventually(delivery_states) == ["sent"]

    code = mesh.stop()
    assert code == 0, mesh.transcript()
    for name in SERVICE_NAMES:
        assert f"{name} exited cleanly" in mesh.output, mesh.transcript()
