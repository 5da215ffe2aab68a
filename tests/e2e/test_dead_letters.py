"""A provider that always fails fills the dead-letter queue; once it recovers,
a replay delivers every message exactly once, and decides each one again first
(a number that texted STOP meanwhile is not written to)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cli import dead_letters
from tests.conftest import Tenants
from tests.e2e.sms_mesh import S, SmsMesh, phone_of, sms_delivery_id, sms_mesh
from tests.integration.bus_helpers import queue_depth

SENDMESH = str(Path(sys.executable).parent / "sendmesh")
STAGE = "send.sms"
MAX_ATTEMPTS = 3  # the test settings' default, said out loud


@pytest.fixture
async def mesh(
    make_settings: Callable[..., Any],
    tenants: Tenants,
    tmp_path: Path,
    amqp_url: str,
    namespace: str,
) -> AsyncIterator[SmsMesh]:
    async with sms_mesh(
        make_settings, tenants, tmp_path, amqp_url, namespace, max_attempts=MAX_ATTEMPTS
    ) as running:
        yield running


async def dead_intents(mesh: SmsMesh, prefix: str, count: int) -> dict[str, str]:
    """`count` users whose SMS intents all died against the down provider."""
    users = [f"{prefix}-{n}" for n in range(count)]
    await asyncio.gather(*(mesh.add_user(u, phone_of(n)) for n, u in enumerate(users)))
    mesh.peer.go_down(503)
    ids = await asyncio.gather(*(mesh.submit_sms(f"{prefix}-{u}", u) for u in users))
    intents = dict(zip(users, ids, strict=True))
    await mesh.settled(intents, S.DELIVERY_STATE_DEAD, "max_attempts")
    return intents


async def sendmesh_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        SENDMESH,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_an_always_failing_provider_fills_the_dead_letter_queue_and_replay_delivers_each_once(
    mesh: SmsMesh,
):
    count = 8
    intents = await dead_intents(mesh, "down", count)
    dead_queue = mesh.topology.dead_letter_queue(STAGE)

    # The fault happened: every message was refused on every attempt, none accepted.
    assert mesh.peer.failures[503] == count * MAX_ATTEMPTS
    assert mesh.peer.accepted == []
    statuses = {u: await mesh.sms_status(i) for u, i in intents.items()}
    for status in statuses.values():
        assert status is not None
        assert status.current.stage == "sms"
        assert "after 3 attempts, provider_unavailable" in status.current.detail
    letters = await dead_letters.read(mesh.amqp_url, mesh.topology, STAGE, 100)
    assert len(letters) == count
    assert {(d.reason, d.attempts) for d in letters} == {("max_attempts", MAX_ATTEMPTS)}
    assert all("provider_unavailable" in d.detail for d in letters)
    assert await queue_depth(mesh.amqp_url, dead_queue) == count  # reading took nothing

    mesh.peer.recover()
    # Half through the function, the rest through the command as an operator runs it.
    first = await dead_letters.replay(mesh.amqp_url, mesh.topology, STAGE, limit=count // 2)
    code, out, err = await sendmesh_cli(
        "dlq", "replay", STAGE, "--amqp-url", mesh.amqp_url,
        "--namespace", mesh.topology.namespace,
    )  # fmt: skip
    assert len(first.replayed) == count // 2
    assert code == 0, err
    assert f"replayed {count - count // 2} from {dead_queue} to " in out

    sent = await mesh.settled(intents, S.DELIVERY_STATE_SENT, "sent")
    expected = {sms_delivery_id(intents[u], u) for u in intents}
    assert set(mesh.peer.accepts_by_token) == expected
    assert all(n == 1 for n in mesh.peer.accepts_by_token.values())
    for status in sent.values():
        trail = [(h.stage, h.reason) for h in status.history]
        assert ("dlq", "replayed") in trail
        assert ("sms", "max_attempts") in trail and ("sms", "sent") in trail
    assert await queue_depth(mesh.amqp_url, dead_queue) == 0
    code, out, err = await sendmesh_cli(
        "dlq", "list", "--json", "--amqp-url", mesh.amqp_url,
        "--namespace", mesh.topology.namespace,
    )  # fmt: skip
    assert code == 0, err
    assert {q["stage"]: q["count"] for q in json.loads(out)}[STAGE] == 0


async def test_a_replay_decides_again_and_a_number_that_texted_stop_meanwhile_is_not_sent_to(
    mesh: SmsMesh,
):
    intents = await dead_intents(mesh, "stop", 2)
    stopped, kept = sorted(intents)
    await mesh.suppress(phone_of(int(stopped.rsplit("-", 1)[1])))
    mesh.peer.recover()

    report = await dead_letters.replay(mesh.amqp_url, mesh.topology, STAGE, limit=10)

    assert len(report.replayed) == 2
    await mesh.settled({kept: intents[kept]}, S.DELIVERY_STATE_SENT, "sent")
    [suppressed] = (await mesh.settled(
        {stopped: intents[stopped]}, S.DELIVERY_STATE_SUPPRESSED, "suppressed"
    )).values()  # fmt: skip
    assert suppressed.current.stage == "eligibility"
    assert "sms_stop" in suppressed.current.detail
    assert set(mesh.peer.accepts_by_token) == {sms_delivery_id(intents[kept], kept)}
    assert [a.to for a in mesh.peer.accepted] == [phone_of(int(kept.rsplit("-", 1)[1]))]
