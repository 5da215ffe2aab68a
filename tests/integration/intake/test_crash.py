"""The real crash: intake is SIGKILLed while submits are in flight, then restarted
on the same files. Nothing it answered OK to may be lost, and retrying any key
must not make a second intent.

Intake runs as a child process (`python -m services.intake`) so that the kill
is a real one: no finally blocks, no graceful stop, whatever the OS had.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc

from shared.bus import topology
from shared.bus.topology import Topology
from tests import servers
from tests.conftest import TEST_RETRY_DELAYS, Tenants
from tests.integration.intake.conftest import inapp_intent

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[3]
SUBMITS = 300
# Submits start this far apart: a steady stream, many in flight at the kill.
STAGGER_S = 0.003
KILL_AFTER_OK = 100
START_WITHIN_S = 30.0
DRAIN_WITHIN_S = 30.0


class IntakeProcess:
    """`python -m services.intake` with SENDMESH_* settings, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["SENDMESH_GRPC_PORT"])
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.intake"],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def wait_serving(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_WITHIN_S
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while loop.time() < deadline:
                if self.process.poll() is not None:
                    break
                try:
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"intake did not serve (exit {self.process.poll()}):\n{self.log_tail()}")

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(10)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def start_intake(
    amqp_url: str, namespace: str, tenants: Tenants, tmp_path: Path
) -> Iterator[type[IntakeProcess] | object]:
    """Starts intake children on one var dir; every child is killed at the end."""
    started: list[IntakeProcess] = []
    base = {k: v for k, v in os.environ.items() if not k.startswith("SENDMESH_")}
    base.update(
        {
            "SENDMESH_AMQP_URL": amqp_url,
            "SENDMESH_METRICS_PORT": "0",
            "SENDMESH_BUS_NAMESPACE": namespace,
            "SENDMESH_VAR_DIR": str(tmp_path / "var"),
            "SENDMESH_API_KEYS": json.dumps(tenants.hashed),
            # The delay queues are shared by the run: their TTLs must match.
            "SENDMESH_RETRY_DELAYS_S": json.dumps(list(TEST_RETRY_DELAYS)),
            "SENDMESH_LOG_LEVEL": "warning",
        }
    )

    def start() -> IntakeProcess:
        env = {**base, "SENDMESH_GRPC_PORT": str(servers.free_port())}
        child = IntakeProcess(env, tmp_path / "intake.log")
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()


class PlanQueue:
    """Reads the plan queue as the profile stage would: which key became which intent."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.name = Topology(namespace, TEST_RETRY_DELAYS).queue(topology.PLAN)
        self.intents_by_key: dict[str, set[str]] = defaultdict(set)
        self.messages = 0

    @property
    def intent_ids(self) -> set[str]:
        return {i for ids in self.intents_by_key.values() for i in ids}

    async def read_until(self, wanted: set[str]) -> None:
        """Take envelopes off the queue until every intent in `wanted` has been seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_WITHIN_S
        conn = await aio_pika.connect(self.amqp_url)
        async with conn:
            channel = await conn.channel()
            queue = await channel.get_queue(self.name, ensure=False)
            while not wanted <= self.intent_ids and loop.time() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                    continue
                env = envelope_pb2.Envelope.FromString(message.body)
                assert env.tenant_id == "acme"
                self.intents_by_key[env.intent.idempotency_key].add(env.intent_id)
                self.messages += 1


def request_for(n: int) -> intake_pb2.SubmitRequest:
    return intake_pb2.SubmitRequest(intent=inapp_intent(f"crash-{n:03d}", users=(f"u{n}",)))


async def test_every_intent_answered_ok_survives_a_sigkill_and_is_published_after_restart(
    start_intake, tenants: Tenants, amqp_url: str, namespace: str
):
    first = start_intake()
    await first.wait_serving()

    ok: dict[str, str] = {}
    failed: dict[str, grpc.StatusCode] = {}
    enough = asyncio.Event()
    killed = asyncio.Event()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)

        async def submit(n: int) -> None:
            await asyncio.sleep(n * STAGGER_S)
            key = request_for(n).intent.idempotency_key
            try:
                reply = await stub.Submit(request_for(n), metadata=tenants.metadata(), timeout=20)
            except grpc.aio.AioRpcError as err:
                failed[key] = err.code()
                return
            assert not reply.duplicate
            ok[key] = reply.intent_id
            if len(ok) >= KILL_AFTER_OK:
                enough.set()

        async def kill_midway() -> int:
            await enough.wait()
            code = first.kill()
            killed.set()
            return code

        killer = asyncio.create_task(kill_midway())
        await asyncio.gather(*(submit(n) for n in range(SUBMITS)))
        returncode = await asyncio.wait_for(killer, 10)

    # The fault really happened, in the middle of the stream.
    assert killed.is_set()
    assert returncode == -signal.SIGKILL, first.log_tail()
    assert len(ok) >= KILL_AFTER_OK and failed, (len(ok), len(failed))
    assert len(ok) + len(failed) == SUBMITS
    assert set(failed.values()) <= {grpc.StatusCode.UNAVAILABLE}, set(failed.values())

    second = start_intake()
    await second.wait_serving()

    # Every intent answered OK reaches the plan queue: duplicates allowed, losses not.
    plan = PlanQueue(amqp_url, namespace)
    await plan.read_until(set(ok.values()))
    lost = set(ok.values()) - plan.intent_ids
    assert not lost, f"{len(lost)} of {len(ok)} OK'd intents never reached the plan queue"
    for key, intent_id in ok.items():
        assert plan.intents_by_key[key] == {intent_id}

    # Retrying an OK'd key returns the same intent and creates nothing.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)
        retried = await asyncio.gather(
            *(stub.Submit(request_for(n), metadata=tenants.metadata()) for n in range(SUBMITS))
        )
    replies = {request_for(n).intent.idempotency_key: r for n, r in enumerate(retried)}
    for key, intent_id in ok.items():
        assert (replies[key].intent_id, replies[key].duplicate) == (intent_id, True), key

    # A caller whose submit failed retries it: each key ends as exactly one intent.
    await plan.read_until({r.intent_id for r in replies.values()})
    for key, reply in replies.items():
        assert plan.intents_by_key[key] == {reply.intent_id}, key
    assert len(plan.intent_ids) == SUBMITS

    assert second.terminate() == 0, second.log_tail()
