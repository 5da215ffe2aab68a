"""The fan-out phase: one marketing intent to a topic of 100,000 members,
delivered in-app, with every service's resident memory sampled meanwhile.

Members are loaded with their opt-in through UpsertProfiles and subscribed
10,000 at a time. The rate is distinct SENT deliveries between the first and
the last SENT decision; the memory figures cover submit to last SENT.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from cli.bench.mesh_load import MeshLoad, Submissions
from cli.bench.procs import ProcessFigure, sampling
from cli.bench.seed import Seeder, bench_profile
from cli.bench.sent import SentWatcher
from cli.bench.stats import span_rate
from cli.intents import new_idempotency_key

TOPIC = "bench-fanout"
CATEGORY = "bench-news"


class FanoutError(Exception):
    """The fan-out intent was not accepted; the message says why."""


@dataclass(frozen=True)
class FanoutResult:
    members: int
    delivered: int
    # Loading the members (profiles with consents, then the topic).
    seed_seconds: float
    # Submit -> first SENT: planning's first page and the hops behind it.
    first_sent_after_s: float
    # First SENT -> last SENT, and the rate over that span.
    seconds: float
    deliveries_per_s: float
    # Submit -> last SENT.
    end_to_end_s: float
    processes: list[ProcessFigure]


def member_ids(run: str, count: int) -> list[str]:
    return [f"fan-{run}-{i:06d}" for i in range(count)]


def news_request(topic: str) -> intake_pb2.SubmitRequest:
    """In-app marketing to everyone on `topic` (no cap policy names its category)."""
    intent = intent_pb2.SendIntent(
        idempotency_key=new_idempotency_key(),
        category=CATEGORY,
        kind=intent_pb2.KIND_MARKETING,
        audience=intent_pb2.Audience(topic=topic),
        channels=[intent_pb2.CHANNEL_INAPP],
        content=intent_pb2.Content(
            inline=intent_pb2.InlineContent(
                inapp=intent_pb2.InAppContent(title="bench news", body="sendmesh bench fan-out")
            )
        ),
    )
    return intake_pb2.SubmitRequest(intent=intent)


async def seed(seeder: Seeder, members: Sequence[str]) -> float:
    """Loads the members; how long it took."""
    start = time.monotonic()
    await seeder.profiles([bench_profile(u, CATEGORY) for u in members])
    await seeder.subscribe(TOPIC, members)
    return time.monotonic() - start


class FanoutRun:
    def __init__(self, load: MeshLoad, watcher: SentWatcher, pids: Mapping[str, int]) -> None:
        self._load = load
        self._watcher = watcher
        self._pids = pids
        self.intent_id = ""

    def delivered(self) -> int:
        return self._watcher.delivered(self.intent_id) if self.intent_id else 0

    async def measure(self, members: int, seed_seconds: float, stall_s: float) -> FanoutResult:
        """Submit, then wait for every member's SENT, or until none came for `stall_s`."""
        async with sampling(self._pids) as sampler:
            submitted_at = time.time()
            subs = Submissions()
            await self._load.submit_request(news_request(TOPIC), subs)
            if not subs.started_at:
                raise FanoutError(f"fan-out intent refused: {subs.first_error}")
            [self.intent_id] = subs.started_at
            await self._wait(members, stall_s)
        sends = self._watcher.sends.get(self.intent_id)
        count = len(sends.delivered) if sends else 0
        first = sends.first_sent_at if sends else submitted_at
        last = sends.last_sent_at if sends else submitted_at
        return FanoutResult(
            members=members,
            delivered=count,
            seed_seconds=seed_seconds,
            first_sent_after_s=first - submitted_at,
            seconds=last - first,
            deliveries_per_s=span_rate(count, first, last),
            end_to_end_s=last - submitted_at,
            processes=sampler.figures(),
        )

    async def _wait(self, members: int, stall_s: float) -> None:
        seen, quiet_since = 0, time.monotonic()
        while self.delivered() < members and time.monotonic() - quiet_since < stall_s:
            await self._watcher.wait_changed(0.2)
            if self.delivered() > seen:
                seen, quiet_since = self.delivered(), time.monotonic()
