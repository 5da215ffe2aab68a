"""A rolling restart of every stage under load loses nothing and sends nothing twice.

Every service runs as its own process, started as `sendmesh run` starts them
(cli.launcher, with cli.mesh's ports and environment), on free ports, in a
namespace and var dir of their own. The test submits in-app and email intents
over gRPC the whole time (every third one with a short `send_at`, so that it
goes through the scheduler) and meanwhile stops each stage in turn with
SIGTERM: the process must say NOT_SERVING, exit 0 within its grace period, and
its replacement must serve and take up the work before the next stage goes.

The fault is proven per stage: the old process had just consumed when the
signal went, its pid is gone, a new pid serves and consumes the same queue.
Then every accepted intent must be complete and sent, with exactly one inbox
message per recipient, one email file per address, and one provider call per
delivery (the channel workers' records say attempt 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from sendmesh.inapp.v1 import inbox_pb2, inbox_pb2_grpc
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc

from cli.bus_admin import delete_namespace
from cli.launcher import Launcher
from cli.mesh import SERVICES, MeshConfig, free_port_block
from shared.bus.topology import Topology
from shared.clock import to_timestamp, utcnow
from shared.ids import delivery_id
from tests.conftest import Tenants

C = intent_pb2.Channel
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GONE = -1  # no answer: the server has stopped
POLLERS = 8
# Per health check. A check that reaches a server just as it stops is now and
# then neither answered nor refused: grpc.aio holds it as in flight, and the
# server's stop waits for it until the caller's deadline (seen: exactly the
# old 15 s). A probe's deadline is short, as a kubelet's is.
CHECK_TIMEOUT_S = 2.0

# Every stage the load goes through (sms and webpush carry none of it).
STAGES = ("intake", "profile", "eligibility", "frequency", "scheduler", "email", "inapp")
GRACE_S = 15.0
RATE_PER_S = 12.0
USERS = tuple(f"rr-user-{i}" for i in range(6))
CHANNELS = (C.CHANNEL_INAPP, C.CHANNEL_EMAIL)
DEFERRED_EVERY = 3
SEND_AT_S = 1.5
START_TIMEOUT_S = 90.0
TAKE_UP_S = 30.0
SETTLE_S = 60.0
SUBMIT_TIMEOUT_S = 10.0
# Intents accepted before the first restart: the pipeline is full by then.
WARM_UP = int(2 * RATE_PER_S)
# Fail fast while a service is down, and find it again soon once it is back.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]

pytestmark = pytest.mark.timeout(300)


@dataclass
class Restart:
    stage: str
    old_pid: int
    new_pid: int
    exit_code: int
    stop_s: float
    statuses: list[int]
    consumed_before: float
    consumed_after: float
    accepted_before: int
    accepted_after: int


@dataclass
class Load:
    """Intents submitted at a steady rate; each retried with its own key until accepted."""

    intake: intake_pb2_grpc.IntakeStub
    tenants: Tenants
    accepted: dict[int, str] = field(default_factory=dict)
    refusals: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while not self.stop.is_set():
            pending.add(asyncio.create_task(self._submit(n, intent_for(n))))
            n += 1
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.gather(*pending)  # every intent ends accepted

    async def _submit(self, n: int, intent: intent_pb2.SendIntent) -> None:
        request = intake_pb2.SubmitRequest(intent=intent)
        while True:
            try:
                reply = await self.intake.Submit(
                    request, metadata=self.tenants.metadata(), timeout=SUBMIT_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as err:
                self.refusals[err.code().name] += 1
                await asyncio.sleep(0.5)
                continue
            self.accepted[n] = reply.intent_id
            return


def intent_for(n: int) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        idempotency_key=f"rr-{n}",
        category="order_update",
        kind=intent_pb2.KIND_TRANSACTIONAL,
        channels=CHANNELS,
        strategy=intent_pb2.STRATEGY_ALL,
    )
    intent.audience.user_ids.extend(recipients(n))
    inline = intent.content.inline
    inline.inapp.title, inline.inapp.body = "Order", f"update {n}"
    inline.email.subject, inline.email.text = "Order", f"update {n}"
    if n % DEFERRED_EVERY == 0:
        intent.timing.send_at.CopyFrom(to_timestamp(utcnow() + timedelta(seconds=SEND_AT_S)))
    return intent


def recipients(n: int) -> list[str]:
    return [USERS[n % len(USERS)], USERS[(n + 1) % len(USERS)]]


@pytest.fixture
async def mesh(
    tmp_path: Path, amqp_url: str, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Launcher]:
    # Inherited by every child through cli.mesh.service_env.
    monkeypatch.setenv("SENDMESH_SHUTDOWN_GRACE_S", str(GRACE_S))
    cfg = MeshConfig(
        var_dir=tmp_path / "var",
        namespace="rr" + uuid.uuid4().hex[:10],
        base_port=free_port_block(),
        metrics_base_port=free_port_block(),
        amqp_url=amqp_url,
        log_format="json",
    )
    launcher = Launcher(
        cfg,
        tenants.hashed,
        log_dir=tmp_path / "logs",
        start_timeout_s=START_TIMEOUT_S,
        grace_s=GRACE_S + 10,
        # This process forks replacements while its gRPC threads run: no Python
        # in the child before exec. The `finally` below stops the children.
        die_with_parent=False,
    )
    await asyncio.to_thread(launcher.start)
    try:
        yield launcher
    finally:
        await asyncio.to_thread(launcher.stop)
        await delete_namespace(amqp_url, cfg.namespace)


def channel_to(cfg: MeshConfig, service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(cfg.address(service), options=CHANNEL_OPTIONS)


def consumed_by(cfg: MeshConfig, stage: str) -> float:
    """Messages the running `stage` process finished with on its main queue."""
    queue = Topology(cfg.namespace).queue(main_queue(stage))
    url = f"http://{cfg.host}:{cfg.metrics_port(stage)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "sendmesh_consumer_messages":
            total += sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total") and s.labels.get("queue") == queue
            )
    return total


def main_queue(stage: str) -> str:
    return next(s.consumes[0] for s in SERVICES if s.name == stage)


async def until(probe_s: float, what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + probe_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {probe_s} s")
        await asyncio.sleep(0.1)


async def poll_readiness(
    health: health_pb2_grpc.HealthStub, seen: list[int], answered: asyncio.Event
) -> None:
    """Readiness as fast as it can be asked, until the server stops answering.

    Polled, not watched: Health.Watch answers INTERNAL through our interceptors
    (MetricsWrapping iterates a handler that writes). Several pollers keep
    asks in flight; a signalled service answers NOT_SERVING for a second
    (shared.runtime.NOT_SERVING_S) before it refuses them.
    """
    await asyncio.gather(*(_poll(health, seen, answered) for _ in range(POLLERS)))


async def _poll(
    health: health_pb2_grpc.HealthStub, seen: list[int], answered: asyncio.Event
) -> None:
    while True:
        try:
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError:
            return  # stopped, or stopping and refusing (or holding) new calls
        seen.append(int(reply.status))
        answered.set()


async def readiness(cfg: MeshConfig, stage: str) -> int:
    async with channel_to(cfg, stage) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.aio.AioRpcError:
            return GONE
    return int(reply.status)


async def restart(launcher: Launcher, stage: str, load: Load) -> Restart:
    cfg = launcher.cfg
    [old] = [c for c in launcher.children if c.name == stage]
    before = await asyncio.to_thread(consumed_by, cfg, stage)
    # Busy right up to the signal: it consumed something just now.
    await until(TAKE_UP_S, f"{stage} consuming", lambda: consumed_by(cfg, stage) > before)
    consumed_before = await asyncio.to_thread(consumed_by, cfg, stage)
    accepted_before = len(load.accepted)

    async with channel_to(cfg, stage) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        seen: list[int] = []
        answered = asyncio.Event()
        polling = asyncio.create_task(poll_readiness(health, seen, answered))
        await answered.wait()  # the pollers are asking: now the signal
        sent_at = time.monotonic()
        old.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(polling, GRACE_S)
        # In the order the answers came, then none: every poller was refused.
        statuses = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] + [GONE]

    try:
        code = await asyncio.to_thread(old.process.wait, GRACE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{stage} still running {GRACE_S} s after SIGTERM")
    stop_s = time.monotonic() - sent_at
    with pytest.raises(ProcessLookupError):
        os.kill(old.process.pid, 0)

    new = launcher.respawn(stage)
    deadline = time.monotonic() + START_TIMEOUT_S
    while await readiness(cfg, stage) != SERVING:
        assert new.exit_code() is None, f"{stage} replacement exited with {new.exit_code()}"
        assert time.monotonic() < deadline, f"{stage} replacement not SERVING"
        await asyncio.sleep(0.1)
    # The replacement took up the work (a new process counts from zero).
    await until(TAKE_UP_S, f"{stage} replacement consuming", lambda: consumed_by(cfg, stage) > 0)
    return Restart(
        stage,
        old.process.pid,
        new.process.pid,
        code,
        stop_s,
        [int(s) for s in statuses],
        consumed_before,
        await asyncio.to_thread(consumed_by, cfg, stage),
        accepted_before,
        len(load.accepted),
    )


async def add_profiles(cfg: MeshConfig, tenants: Tenants) -> None:
    async with channel_to(cfg, "profile") as channel:
        stub = profile_pb2_grpc.ProfilesStub(channel)
        for user in USERS:
            profile = profile_pb2.Profile(user_id=user, locale="en", timezone="UTC")
            profile.contacts.email = f"{user}@example.com"
            await stub.UpsertProfile(
                profile_pb2.UpsertProfileRequest(profile=profile), metadata=tenants.metadata()
            )


async def intents_of(
    cfg: MeshConfig, tenants: Tenants, intent_ids: list[str]
) -> dict[str, intake_pb2.Intent]:
    async with channel_to(cfg, "intake") as channel:
        stub = intake_pb2_grpc.IntakeStub(channel)

        async def get(intent_id: str) -> intake_pb2.Intent:
            request = intake_pb2.GetIntentRequest(intent_id=intent_id)
            reply = await stub.GetIntent(request, metadata=tenants.metadata(), timeout=10)
            return reply.intent

        views: dict[str, intake_pb2.Intent] = {}
        for start in range(0, len(intent_ids), 50):
            chunk = intent_ids[start : start + 50]
            for view in await asyncio.gather(*(get(i) for i in chunk)):
                views[view.intent_id] = view
        return views


def all_sent(view: intake_pb2.Intent) -> bool:
    return view.state == intake_pb2.INTENT_STATE_COMPLETED and all(
        d.current.state == intent_pb2.DELIVERY_STATE_SENT for d in view.deliveries
    )


async def inbox_counts(cfg: MeshConfig, tenants: Tenants) -> Counter[tuple[str, str]]:
    """(intent id, user) -> inbox messages, read through ListInbox page by page."""
    counts: Counter[tuple[str, str]] = Counter()
    async with channel_to(cfg, "inapp") as channel:
        stub = inbox_pb2_grpc.InboxStub(channel)
        for user in USERS:
            token = ""
            while True:
                page = await stub.ListInbox(
                    inbox_pb2.ListInboxRequest(user_id=user, page_size=100, page_token=token),
                    metadata=tenants.metadata(),
                )
                counts.update((m.intent_id, m.user_id) for m in page.messages)
                if not (token := page.next_page_token):
                    break
    return counts


def provider_attempts(var_dir: Path, service: str) -> dict[str, tuple[str, int]]:
    """delivery id -> (state, attempts) from a channel worker's own records."""
    uri = f"file:{var_dir.resolve() / (service + '.db')}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute("SELECT delivery_id, state, attempts FROM channel_deliveries")
        return {d: (state, attempts) for d, state, attempts in rows}


async def test_a_rolling_restart_of_every_stage_under_load_loses_nothing_and_sends_nothing_twice(
    mesh: Launcher, tenants: Tenants
):
    cfg = mesh.cfg
    await add_profiles(cfg, tenants)
    async with channel_to(cfg, "intake") as channel:
        load = Load(intake_pb2_grpc.IntakeStub(channel), tenants)
        running = asyncio.create_task(load.run())
        restarts = []
        try:
            await until(TAKE_UP_S, "load under way", lambda: len(load.accepted) >= WARM_UP)
            for stage in STAGES:
                restarts.append(await restart(mesh, stage, load))
        finally:
            load.stop.set()
            await asyncio.wait_for(running, TAKE_UP_S)
    mesh.check_alive()

    # The faults happened, one stage at a time, with the load going through them.
    for r in restarts:
        assert r.statuses == [SERVING, NOT_SERVING, GONE], r
        assert r.exit_code == 0 and r.stop_s <= GRACE_S, r
        assert r.new_pid != r.old_pid, r
        assert r.consumed_before > 0 and r.consumed_after > 0, r
        assert r.accepted_after > r.accepted_before, r
    assert [r.stage for r in restarts] == list(STAGES)
    # While intake stopped and started, callers were told to come back (and
    # did, with the same key): UNAVAILABLE, or now and then CANCELLED for a
    # call that reached the server as it stopped taking calls. A call in flight
    # at the signal was answered: never INTERNAL, never left past its deadline.
    assert load.refusals["UNAVAILABLE"] > 0, load.refusals
    assert set(load.refusals) <= {"UNAVAILABLE", "CANCELLED"}, load.refusals

    # Nothing lost: every accepted intent is complete, every delivery sent.
    accepted = sorted(load.accepted.items())
    ids = [intent_id for _, intent_id in accepted]
    assert len(set(ids)) == len(ids)
    deadline = time.monotonic() + SETTLE_S
    while True:
        views = await intents_of(cfg, tenants, ids)
        unfinished = [i for i in ids if not all_sent(views[i])]
        if not unfinished or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    assert unfinished == [], [views[i] for i in unfinished[:3]]
    for n, intent_id in accepted:
        got = sorted((d.user_id, d.channel) for d in views[intent_id].deliveries)
        assert got == sorted((u, c) for u in recipients(n) for c in CHANNELS), intent_id

    # Nothing twice: one inbox message per recipient, one email per address,
    # and the provider asked once per delivery.
    expected_inbox = Counter({(i, u): 1 for n, i in accepted for u in recipients(n)})
    assert await inbox_counts(cfg, tenants) == expected_inbox
    for service, channel_enum in (("inapp", C.CHANNEL_INAPP), ("email", C.CHANNEL_EMAIL)):
        records = provider_attempts(cfg.var_dir, service)
        expected = {delivery_id(i, u, channel_enum) for n, i in accepted for u in recipients(n)}
        assert set(records) == expected, service
        assert {d: r for d, r in records.items() if r != ("sent", 1)} == {}, service
    outbox = cfg.var_dir / "outbox" / "email"
    emails = {p.stem for p in outbox.glob("*.json")}
    assert emails == {
        delivery_id(i, u, C.CHANNEL_EMAIL) for n, i in accepted for u in recipients(n)
    }
