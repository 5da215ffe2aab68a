"""The bench's phases in order, with progress bars: warm-up; single intents
(throughput, latency, floor); decisions; channels; the bare relay baseline; fan-out."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

import grpc
from rich.progress import Progress, TaskID

from cli.bench import channels, decisions, fanout
from cli.bench.baseline import Baseline, BaselineResult
from cli.bench.channels import DEV_SETUP, ChannelResult, ChannelSetup
from cli.bench.decisions import DecisionsResult
from cli.bench.fanout import FanoutResult, FanoutRun
from cli.bench.mesh_load import LatencyResult, MeshLoad, Submissions, ThroughputResult
from cli.bench.report import BenchReport, Machine
from cli.bench.seed import Seeder
from cli.bench.sent import SentWatcher
from cli.bench.stats import latency_count
from cli.client import auth_metadata
from cli.intents import ChannelName

T = TypeVar("T")


class Phase(StrEnum):
    single = "single"
    decisions = "decisions"
    fanout = "fanout"
    channels = "channels"
    all = "all"


ALL_PHASES = frozenset({Phase.single, Phase.decisions, Phase.fanout, Phase.channels})


def phases_of(chosen: Sequence[Phase]) -> frozenset[Phase]:
    """The phases to run; `all` stands for every one."""
    return ALL_PHASES if not chosen or Phase.all in chosen else frozenset(chosen)


class BenchError(Exception):
    """A phase could not measure anything; the message says what happened."""


@dataclass(frozen=True)
class Target:
    """A running mesh: where to submit, and where its events are published."""

    intake: str
    amqp_url: str
    namespace: str
    api_key: str
    # Where the decision and fan-out phases load their data.
    profile: str = ""
    frequency: str = ""
    # Service -> pid, for memory figures; empty for a mesh the bench did not start.
    pids: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchPlan:
    n: int
    concurrency: int
    prefetch: int
    # Per phase: how long to wait for the last SENT after the last submit.
    timeout_s: float = 120.0
    # The latency phase sends fewer than n if n would take longer than this.
    latency_max_s: float = 30.0
    warm_up_n: int = 20
    baseline: bool = True
    # The floor: latency at a rate far below capacity, where nothing queues.
    floor_rate: float = 20.0
    floor_n: int = 200
    phases: frozenset[Phase] = ALL_PHASES
    # The decisions phase: profiles loaded; it submits n intents to them.
    profiles: int = 10_000
    # The fan-out phase: members of the topic.
    fanout_members: int = 100_000
    # The channels phase: intents per channel and provider mode.
    channel_n: int = 300


def machine() -> Machine | None:
    """Cores and load averages now; None where the system has no load average."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return None
    return Machine(os.cpu_count() or 0, (one, five, fifteen))


async def _loading(phase: str, work: Coroutine[Any, Any, T]) -> T:
    """`work`, with a refused or failed load call said in one line."""
    try:
        return await work
    except grpc.aio.AioRpcError as err:
        raise BenchError(
            f"{phase}: loading data failed: {err.code().name}: {err.details()}"
        ) from None


class Bars:
    """Progress bars fed from counters read on every tick."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tracked: list[tuple[TaskID, Callable[[], int]]] = []

    def track(self, label: str, total: int, count: Callable[[], int]) -> None:
        self._tracked.append((self._progress.add_task(label, total=total), count))

    def refresh(self) -> None:
        for task, count in self._tracked:
            self._progress.update(task, completed=count())

    def finish(self) -> None:
        """Last update of this phase's bars; they stop being counted."""
        self.refresh()
        self._tracked.clear()


async def ticking(
    work: Coroutine[Any, Any, T], tick: Callable[[], None], every_s: float = 0.1
) -> T:
    """Run `work`, calling `tick` meanwhile; an exception from `tick` cancels the work."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            tick()
            await asyncio.wait({task}, timeout=every_s)
        tick()
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class BenchRun:
    def __init__(
        self,
        target: Target,
        plan: BenchPlan,
        bars: Bars,
        check_alive: Callable[[], None],
        channel_setup: ChannelSetup = DEV_SETUP,
    ):
        self.target = target
        self.plan = plan
        # The providers the target mesh runs, for the channels phase.
        self.channel_setup = channel_setup
        self.bars = bars
        self._check_alive = check_alive
        self.watcher = SentWatcher(target.amqp_url, target.namespace)

    def _tick(self) -> None:
        self.bars.refresh()
        self._check_alive()

    def _track(self, label: str, total: int, subs: Submissions) -> None:
        self.bars.track(f"{label}: submitted", total, lambda: subs.done)
        self.bars.track(f"{label}: sent", total, lambda: self.watcher.count_sent(subs.started_at))

    async def run(self) -> BenchReport:
        p, report = self.plan, BenchReport(self.plan.n, self.plan.concurrency, self.plan.prefetch)
        await self.watcher.start()
        try:
            async with grpc.aio.insecure_channel(self.target.intake) as channel:
                load = MeshLoad(channel, auth_metadata(self.target.api_key), self.watcher)
                await self._warm_up(load)
                if Phase.single in p.phases:
                    report = await self._single(load, report)
                if Phase.decisions in p.phases:
                    report = replace(report, decisions=await self._decisions(load))
                if Phase.channels in p.phases:
                    report = replace(report, channels=await self._channels(load))
                if p.baseline and p.phases & {Phase.single, Phase.decisions}:
                    # Before the fan-out, which leaves intake busy for a while.
                    report = replace(report, baseline=await self._baseline(report))
                if Phase.fanout in p.phases:
                    report = replace(report, fanout=await self._fanout(load))
        finally:
            await self.watcher.stop()
        return replace(report, machine=machine())

    async def _single(self, load: MeshLoad, report: BenchReport) -> BenchReport:
        throughput = await self._throughput(load)
        latency = await self._latency(load, throughput.intents_per_s / 2, self.plan.n)
        floor = await self._latency(load, self.plan.floor_rate, self.plan.floor_n)
        return replace(report, throughput=throughput, latency=latency, latency_floor=floor)

    def _seeder(self, profile: grpc.aio.Channel, frequency: grpc.aio.Channel) -> Seeder:
        return Seeder(profile, frequency, auth_metadata(self.target.api_key))

    async def _decisions(self, load: MeshLoad) -> DecisionsResult:
        p = self.plan
        users = decisions.user_ids(load.run_id, p.profiles)
        async with (
            grpc.aio.insecure_channel(self.target.profile) as profile,
            grpc.aio.insecure_channel(self.target.frequency) as frequency,
        ):
            seeder = self._seeder(profile, frequency)
            expected = p.profiles + len(decisions.purchases(users))
            self.bars.track("decisions: profiles and events loaded", expected, lambda: seeder.done)
            await ticking(_loading("decisions", decisions.seed(seeder, users)), self._tick)
            self.bars.finish()
        subs = Submissions()
        self.bars.track("decisions: submitted", p.n, lambda: subs.done)
        self.bars.track(
            "decisions: decided", p.n, lambda: self.watcher.count_ended(subs.started_at)
        )
        work = decisions.measure(
            load, self.watcher, users, p.n, p.concurrency, p.timeout_s, subs, self.target.pids
        )
        result = await ticking(work, self._tick)
        self.bars.finish()
        if result.sent == 0:
            raise BenchError(f"decisions: nothing was sent ({subs.first_error or 'timed out'})")
        return result

    async def _channels(self, load: MeshLoad) -> tuple[ChannelResult, ...]:
        async with (
            grpc.aio.insecure_channel(self.target.profile) as profile,
            grpc.aio.insecure_channel(self.target.frequency) as frequency,
        ):
            seeder = self._seeder(profile, frequency)
            return tuple(
                [await self._channel(load, seeder, c) for c in self.channel_setup.channels]
            )

    async def _channel(self, load: MeshLoad, seeder: Seeder, channel: ChannelName) -> ChannelResult:
        p, setup, subs = self.plan, self.channel_setup, Submissions()
        label = f"{channel.value} ({setup.mode.value})"
        self.bars.track(f"{label}: submitted", p.channel_n, lambda: subs.done)
        self.bars.track(
            f"{label}: decided", p.channel_n, lambda: self.watcher.count_ended(subs.started_at)
        )
        work = channels.measure(
            load,
            self.watcher,
            seeder,
            setup,
            channel,
            p.channel_n,
            p.concurrency,
            p.timeout_s,
            subs,
        )
        result = await ticking(work, self._tick)
        self.bars.finish()
        return result

    async def _fanout(self, load: MeshLoad) -> FanoutResult:
        p = self.plan
        members = fanout.member_ids(load.run_id, p.fanout_members)
        async with (
            grpc.aio.insecure_channel(self.target.profile) as profile,
            grpc.aio.insecure_channel(self.target.frequency) as frequency,
        ):
            seeder = self._seeder(profile, frequency)
            # Each member is written twice: the profile, then the membership.
            self.bars.track("fan-out: members loaded", 2 * len(members), lambda: seeder.done)
            seeding = _loading("fan-out", fanout.seed(seeder, members))
            seed_seconds = await ticking(seeding, self._tick)
            self.bars.finish()
        run = FanoutRun(load, self.watcher, self.target.pids)
        self.bars.track("fan-out: delivered in-app", len(members), run.delivered)
        result = await ticking(run.measure(len(members), seed_seconds, p.timeout_s), self._tick)
        self.bars.finish()
        if result.delivered == 0:
            raise BenchError("fan-out: nothing was delivered")
        return result

    async def _warm_up(self, load: MeshLoad) -> None:
        subs = Submissions()
        self._track("warm-up", self.plan.warm_up_n, subs)
        await ticking(load.warm_up(self.plan.warm_up_n, self.plan.timeout_s, subs), self._tick)
        self.bars.finish()
        if self.watcher.count_sent(subs.started_at) == 0:
            detail = subs.first_error or "submitted, but no SENT event arrived"
            raise BenchError(f"warm-up: no intent reached SENT ({detail})")

    async def _throughput(self, load: MeshLoad) -> ThroughputResult:
        p, subs = self.plan, Submissions()
        self._track("throughput", p.n, subs)
        work = load.throughput(p.n, p.concurrency, p.timeout_s, subs)
        result = await ticking(work, self._tick)
        self.bars.finish()
        if result.sent == 0:
            raise BenchError(f"throughput: nothing was sent ({subs.first_error or 'timed out'})")
        return result

    async def _latency(self, load: MeshLoad, rate: float, n: int) -> LatencyResult:
        """Submit→sent latencies of intents offered open loop at `rate`."""
        count = latency_count(n, rate, self.plan.latency_max_s)
        subs = Submissions()
        self._track(f"latency at {rate:,.0f}/s", count, subs)
        result = await ticking(load.latency(count, rate, self.plan.timeout_s, subs), self._tick)
        self.bars.finish()
        return result

    async def _baseline(self, report: BenchReport) -> BaselineResult:
        """The bare relays' throughput, and their latency at the mesh's latency rates."""
        p = self.plan
        baseline = Baseline(self.target.amqp_url, p.prefetch)
        self.bars.track("baseline: published", p.n, lambda: baseline.progress.published)
        self.bars.track("baseline: relayed", p.n, lambda: baseline.progress.received)
        rates = [
            (lat.offered_per_s, lat.submitted)
            for lat in (report.latency, report.latency_floor)
            if lat is not None
        ]
        work = baseline.run(p.n, p.concurrency, p.timeout_s, latency_at=rates)
        result = await ticking(work, self.bars.refresh)
        self.bars.finish()
        return result
