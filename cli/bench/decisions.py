"""The decisions phase: single marketing intents with profile lookups,
consent, a behaviour rule and a cap active, to random users among 10,000.

The population decides the expected outcomes: every 20th user has no opt-in
(suppressed, no_consent), every 10th (offset 5) bought something an hour ago
(suppressed by the intent's `exclude_if`), and the cap lets one message a day
through per user, so a user drawn twice is capped the second time.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from google.protobuf.duration_pb2 import Duration
from sendmesh.frequency.v1 import frequency_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from cli.bench.mesh_load import MeshLoad, Submissions
from cli.bench.procs import ProcessFigure, sampling
from cli.bench.seed import Seeder, bench_profile
from cli.bench.sent import SentWatcher
from cli.bench.stats import Latencies, per_second, summarize
from cli.intents import new_idempotency_key
from shared.clock import now_timestamp
from shared.envelopes import STATE_NAMES

CATEGORY = "bench-offers"
RULE_EVENT = "purchase"
NO_CONSENT_EVERY = 20
PURCHASED_EVERY = 10
# Outcomes reported on their own; any other final state counts as `other`.
NAMED = ("sent", "suppressed", "capped")
# Fixed, so two runs draw the same recipients.
DRAW_SEED = 20_000


@dataclass(frozen=True)
class DecisionsResult:
    profiles: int
    submitted: int
    failed: int
    sent: int
    suppressed: int
    capped: int
    other: int
    # Submitted, but no final decision arrived before the timeout.
    undecided: int
    seconds: float
    intents_per_s: float
    # Submit -> SENT of the intents that were sent, under this closed-loop load.
    latencies: Latencies
    # CPU (and RSS) of each of the mesh's processes while the intents ran.
    processes: list[ProcessFigure] = field(default_factory=list)


def user_ids(run: str, count: int) -> list[str]:
    return [f"dec-{run}-{i:06d}" for i in range(count)]


def population(users: Sequence[str]) -> list[profile_pb2.Profile]:
    return [
        bench_profile(u, None if i % NO_CONSENT_EVERY == 0 else CATEGORY)
        for i, u in enumerate(users)
    ]


def purchases(users: Sequence[str]) -> list[profile_pb2.UserEvent]:
    """A purchase an hour ago for every PURCHASED_EVERY-th user (offset 5)."""
    at = now_timestamp()
    at.seconds -= 3600
    event = profile_pb2.BehaviourEvent(name=RULE_EVENT, occurred_at=at)
    return [
        profile_pb2.UserEvent(user_id=u, event=event)
        for i, u in enumerate(users)
        if i % PURCHASED_EVERY == PURCHASED_EVERY // 2
    ]


def cap_policy() -> frequency_pb2.CapPolicy:
    """One in-app marketing message of the bench's category a rolling day."""
    return frequency_pb2.CapPolicy(
        policy_id="bench-offers-daily",
        channel=intent_pb2.CHANNEL_INAPP,
        category=CATEGORY,
        kind=intent_pb2.KIND_MARKETING,
        limit=1,
        window_kind=frequency_pb2.WINDOW_KIND_ROLLING,
        window=Duration(seconds=int(timedelta(days=1).total_seconds())),
    )


def offer_request(user_id: str) -> intake_pb2.SubmitRequest:
    """In-app marketing, dropped if the user purchased within 24 hours."""
    rule = intent_pb2.BehaviourRule(event=RULE_EVENT, within=Duration(seconds=24 * 3600))
    intent = intent_pb2.SendIntent(
        idempotency_key=new_idempotency_key(),
        category=CATEGORY,
        kind=intent_pb2.KIND_MARKETING,
        audience=intent_pb2.Audience(user_ids=[user_id]),
        channels=[intent_pb2.CHANNEL_INAPP],
        content=intent_pb2.Content(
            inline=intent_pb2.InlineContent(
                inapp=intent_pb2.InAppContent(title="bench", body="sendmesh bench offer")
            )
        ),
        exclude_if=[rule],
    )
    return intake_pb2.SubmitRequest(intent=intent)


def tally(ended: Mapping[str, tuple[int, float]], intent_ids: Sequence[str]) -> Counter[str]:
    """How the intents ended: sent, suppressed, capped, other, or undecided."""
    counts: Counter[str] = Counter()
    for intent in intent_ids:
        final = ended.get(intent)
        name = "undecided" if final is None else STATE_NAMES.get(final[0], "other")
        counts[name if name in (*NAMED, "undecided") else "other"] += 1
    return counts


async def seed(seeder: Seeder, users: Sequence[str]) -> None:
    await seeder.cap_policy(cap_policy())
    await seeder.profiles(population(users))
    await seeder.events(purchases(users))


async def measure(
    load: MeshLoad,
    watcher: SentWatcher,
    users: Sequence[str],
    n: int,
    concurrency: int,
    timeout_s: float,
    subs: Submissions,
    pids: Mapping[str, int],
) -> DecisionsResult:
    """n intents to users drawn at random (with repeats), closed loop; from
    the first submit to the last final decision."""
    draws = random.Random(DRAW_SEED).choices(users, k=n)
    async with sampling(pids) as sampler:
        start = time.time()
        await load.submit_closed_loop(
            "dec", n, concurrency, subs, recipient=draws.__getitem__, request_for=offer_request
        )
        deadline = time.monotonic() + timeout_s
        ids = list(subs.started_at)
        while watcher.count_ended(ids) < len(ids) and time.monotonic() < deadline:
            await watcher.wait_changed(0.2)
    counts = tally(watcher.ended, ids)
    decided = len(ids) - counts["undecided"]
    last = max((watcher.ended[i][1] for i in ids if i in watcher.ended), default=start)
    latencies = [
        (watcher.sent_at[i] - started) * 1000
        for i, started in subs.started_at.items()
        if i in watcher.sent_at
    ]
    return DecisionsResult(
        profiles=len(users),
        submitted=len(ids),
        failed=subs.failed,
        sent=counts["sent"],
        suppressed=counts["suppressed"],
        capped=counts["capped"],
        other=counts["other"],
        undecided=counts["undecided"],
        seconds=last - start,
        intents_per_s=per_second(decided, last - start),
        latencies=summarize(latencies),
        processes=sampler.figures(),
    )
