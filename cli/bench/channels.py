"""The channels phase: transactional intents on one channel at a time, to
profiles that hold that channel's contact point, through the channel's
provider. Run once with the dev providers (what `make run` uses) and once with
the real providers pointed at local protocol peers (channel_peers.py).

Load is closed loop: `concurrency` submits in flight, each next one sent when
one is answered. The rate is SENT intents over first submit -> last SENT.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

import grpc
from sendmesh.intake.v1 import intake_pb2
from sendmesh.profile.v1 import profile_pb2

from cli.bench.mesh_load import MeshLoad, Submissions
from cli.bench.seed import Seeder
from cli.bench.sent import SentWatcher
from cli.bench.stats import Latencies, per_second, summarize
from cli.intents import ChannelName, SendOptions, build_send_intent
from shared.envelopes import STATE_NAMES

CATEGORY = "bench-channels"
CHANNELS: tuple[ChannelName, ...] = (
    ChannelName.email,
    ChannelName.sms,
    ChannelName.webpush,
    ChannelName.inapp,
)
# Reserved for documentation (RFC 2606): nothing outside the bench resolves it.
EMAIL_DOMAIN = "bench.sendmesh.invalid"
DEV_PUSH_ORIGIN = "https://push.bench.sendmesh.invalid"
# The dev provider never encrypts: any well-formed keys do (a P-256 point is 65 bytes).
DEV_P256DH = "B" + "A" * 86
DEV_AUTH = "A" * 22

SubscriptionFor = Callable[[str], profile_pb2.WebPushSubscription]


class ProviderMode(StrEnum):
    dev = "dev"
    peers = "peers"
    # --no-start-mesh: whatever providers that mesh was started with.
    running = "running"


def dev_subscription(user_id: str) -> profile_pb2.WebPushSubscription:
    """A subscription the dev provider writes down; nothing ever calls it."""
    return profile_pb2.WebPushSubscription(
        endpoint=f"{DEV_PUSH_ORIGIN}/{user_id}", p256dh=DEV_P256DH, auth=DEV_AUTH
    )


def _not_counted(channel: ChannelName) -> int | None:
    return None


@dataclass(frozen=True)
class ChannelSetup:
    """One provider mode: which channels it covers and the provider of each."""

    mode: ProviderMode
    providers: Mapping[str, str]
    channels: tuple[ChannelName, ...] = CHANNELS
    subscription: SubscriptionFor = dev_subscription
    # What the provider's far end took per channel (a peer counts it); None: unknown.
    received: Callable[[ChannelName], int | None] = _not_counted


DEV_SETUP = ChannelSetup(
    ProviderMode.dev, {"email": "dev", "sms": "dev", "webpush": "dev", "inapp": "inbox"}
)
# The real providers the peers mode runs; in-app has no external one.
PEER_PROVIDERS = {"email": "smtp", "sms": "twilio", "webpush": "vapid"}
PEER_CHANNELS = (ChannelName.email, ChannelName.sms, ChannelName.webpush)
RUNNING_SETUP = ChannelSetup(
    ProviderMode.running,
    {c.value: "as configured" for c in CHANNELS},
)


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    mode: str
    provider: str
    submitted: int
    sent: int
    # Submits intake refused (no intent).
    failed_submits: int
    # Final decisions other than SENT, as "state: reason" -> count.
    not_sent: dict[str, int]
    # Submitted, but no final decision arrived before the timeout.
    undecided: int
    seconds: float
    sends_per_s: float
    concurrency: int
    latencies: Latencies
    # What the peer says it received; None when nobody counted.
    peer_received: int | None = None
    # Why the channel was not measured; "" when it was.
    skipped: str = ""


def skipped_result(channel: str, setup: ChannelSetup, why: str) -> ChannelResult:
    return ChannelResult(
        channel=channel,
        mode=setup.mode.value,
        provider=setup.providers.get(channel, ""),
        submitted=0,
        sent=0,
        failed_submits=0,
        not_sent={},
        undecided=0,
        seconds=math.nan,
        sends_per_s=math.nan,
        concurrency=0,
        latencies=summarize([]),
        skipped=why,
    )


def peers_not_run(why: str) -> tuple[ChannelResult, ...]:
    """The peers mode's rows when it could not run at all."""
    setup = ChannelSetup(ProviderMode.peers, PEER_PROVIDERS, PEER_CHANNELS)
    return tuple(skipped_result(c.value, setup, why) for c in PEER_CHANNELS)


def user_ids(run: str, channel: ChannelName, mode: ProviderMode, count: int) -> list[str]:
    return [f"ch-{channel.value}-{mode.value}-{run}-{i:05d}" for i in range(count)]


def email_of(user_id: str) -> str:
    return f"{user_id}@{EMAIL_DOMAIN}"


def phone_of(index: int) -> str:
    """A valid US E.164 number (the 555 exchange the tests use), one per index up to 10,000."""
    return f"+1415555{index % 10_000:04d}"


def contact_profile(
    channel: ChannelName, user_id: str, index: int, subscription: SubscriptionFor
) -> profile_pb2.Profile:
    """A recipient with exactly the contact point `channel` needs (in-app needs none)."""
    profile = profile_pb2.Profile(user_id=user_id, locale="en", timezone="Europe/Vienna")
    profile.attributes.update({"bench": True})
    if channel is ChannelName.email:
        profile.contacts.email = email_of(user_id)
    elif channel is ChannelName.sms:
        profile.contacts.phone = phone_of(index)
    elif channel is ChannelName.webpush:
        profile.contacts.webpush.append(subscription(user_id))
    return profile


def channel_request(channel: ChannelName, user_id: str) -> intake_pb2.SubmitRequest:
    """Transactional on `channel` alone: no consent, caps or quiet hours apply."""
    opts = SendOptions(
        users=[user_id],
        channels=[channel],
        title="sendmesh bench",
        body="sendmesh bench message",
        subject="sendmesh bench",
        category=CATEGORY,
    )
    return intake_pb2.SubmitRequest(intent=build_send_intent(opts))


@dataclass(frozen=True)
class Outcomes:
    sent: int
    not_sent: dict[str, int] = field(default_factory=dict)
    undecided: int = 0


def outcomes(
    ended: Mapping[str, tuple[int, float]], reasons: Mapping[str, str], intent_ids: Sequence[str]
) -> Outcomes:
    """Sent, the other final decisions named by state and reason, and undecided."""
    sent, undecided, other = 0, 0, Counter[str]()
    for intent in intent_ids:
        final = ended.get(intent)
        if final is None:
            undecided += 1
        elif STATE_NAMES.get(final[0]) == "sent":
            sent += 1
        else:
            state = STATE_NAMES.get(final[0], str(final[0]))
            other[f"{state}: {reasons.get(intent) or 'no reason'}"] += 1
    return Outcomes(sent, dict(sorted(other.items())), undecided)


async def measure(
    load: MeshLoad,
    watcher: SentWatcher,
    seeder: Seeder,
    setup: ChannelSetup,
    channel: ChannelName,
    n: int,
    concurrency: int,
    timeout_s: float,
    subs: Submissions,
) -> ChannelResult:
    """Load n recipients of `channel`, submit n intents to them closed loop, and
    wait for each one's final decision (or `timeout_s` after the last submit)."""
    users = user_ids(load.run_id, channel, setup.mode, n)
    profiles = [contact_profile(channel, u, i, setup.subscription) for i, u in enumerate(users)]
    try:
        # The first alone: a refusal then names one field, not n of them (n
        # field violations overflow the reply's metadata).
        await seeder.profiles(profiles[:1])
        await seeder.profiles(profiles[1:])
    except grpc.aio.AioRpcError as err:
        return skipped_result(
            channel, setup, f"profiles refused: {err.code().name}: {err.details()}"
        )
    received_before = setup.received(channel)
    start = time.time()
    await load.submit_closed_loop(
        f"ch-{channel.value}",
        n,
        concurrency,
        subs,
        recipient=users.__getitem__,
        request_for=partial(channel_request, channel),
    )
    ids = list(subs.started_at)
    deadline = time.monotonic() + timeout_s
    while watcher.count_ended(ids) < len(ids) and time.monotonic() < deadline:
        await watcher.wait_changed(0.2)
    ended = outcomes(watcher.ended, watcher.end_reasons, ids)
    sent_times = [watcher.sent_at[i] for i in ids if i in watcher.sent_at]
    seconds = max(sent_times, default=start) - start
    received_after = setup.received(channel)
    return ChannelResult(
        channel=channel.value,
        mode=setup.mode.value,
        provider=setup.providers.get(channel.value, ""),
        submitted=len(ids),
        sent=ended.sent,
        failed_submits=subs.failed,
        not_sent=ended.not_sent,
        undecided=ended.undecided,
        seconds=seconds,
        sends_per_s=per_second(ended.sent, seconds),
        concurrency=min(concurrency, n),
        latencies=summarize(
            [(watcher.sent_at[i] - subs.started_at[i]) * 1000 for i in ids if i in watcher.sent_at]
        ),
        peer_received=_delta(received_before, received_after),
    )


def _delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before
