"""The RabbitMQ topology, declared in one place.

Names come from pure functions (dramatiq's q_name/dq_name/xq_name idea):

    <ns>.work            direct exchange; routing key = stage name
    <ns>.events          topic exchange; `delivery` (EventBatch), `intent.cancelled`,
                         `profile.erased`, `feedback` (FeedbackBatch)
    <ns>.<stage>         quorum work queue (plan, eligibility, frequency, send.inapp, ...)
    <ns>.delay.N         fan-out exchange and wait queue per back-off step, shared
                         by all stages: a retry is published there with its stage
                         as routing key, waits the step's TTL (or its own shorter,
                         jittered expiration), and is dead-lettered to the work
                         exchange with that key, so it returns to its own stage
    <ns>.<stage>.dead    dead letters, with the reason in headers
    <ns>.feedback.<svc>  provider feedback, one queue per service acting on it
                         (eligibility: suppression list; profile: consent)

Few queues on purpose: every quorum queue is a Raft group on the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, ExchangeType
from aiormq.abc import FieldTable

PLAN = "plan"
ELIGIBILITY = "eligibility"
FREQUENCY = "frequency"
# The scheduler's queue: envelopes carrying a Deferral.
DEFERRED = "deferred"
# EventBatches of failed deliveries whose cap slots frequency gives back.
RELEASE = "release"
EVENTS_INTAKE = "events.intake"
CHANNELS = ("email", "sms", "webpush", "inapp")
# Besides the channel workers, the services that hear cancellations and
# erasures; their control queues exist whoever starts first.
CONTROLLED = ("scheduler", "frequency")

EVENTS_DELIVERY_KEY = "delivery"
EVENTS_CANCELLED_KEY = "intent.cancelled"
EVENTS_ERASED_KEY = "profile.erased"
# What every control queue hears: cancelled intents and erased profiles.
CONTROL_KEYS = (EVENTS_CANCELLED_KEY, EVENTS_ERASED_KEY)
# Bounces, complaints and SMS keywords (FeedbackBatch), from the channel workers.
EVENTS_FEEDBACK_KEY = "feedback"
# The services that act on feedback, each from its own queue with its own data.
FEEDBACK_CONSUMERS = ("eligibility", "profile")

# A message redelivered this often (crash loop, not our own retries) is
# dead-lettered by the broker itself.
DELIVERY_LIMIT = 20
# A retry waits between (1 - RETRY_JITTER) and 1 times its step's delay, so
# the messages of one provider outage do not all come back in the same instant.
RETRY_JITTER = 0.2


def send_stage(channel: str) -> str:
    return f"send.{channel}"


def control_stage(service: str) -> str:
    """Per-service queue of cancellations and erasures."""
    return f"control.{service}"


def feedback_stage(service: str) -> str:
    """Per-service queue of provider feedback."""
    return f"feedback.{service}"


def work_stages() -> tuple[str, ...]:
    return (PLAN, ELIGIBILITY, FREQUENCY, DEFERRED, RELEASE, *(send_stage(c) for c in CHANNELS))


@dataclass(frozen=True)
class Backoff:
    """Where a retry waits (a delay queue's step) and for how long."""

    step: int
    wait_s: float


def delay_step(delays: tuple[float, ...], attempt: int, at_least_s: float | None = None) -> int:
    """Back-off step for the given attempt (1-based): one step further per
    attempt, and never a step shorter than `at_least_s` while a longer one exists."""
    step = min(max(attempt - 1, 0), len(delays) - 1)
    if at_least_s is not None:
        while step < len(delays) - 1 and delays[step] < at_least_s:
            step += 1
    return step


def compute_backoff(
    delays: tuple[float, ...],
    attempt: int,
    *,
    retry_after_s: float | None = None,
    jitter: float = RETRY_JITTER,
    rand: float = 1.0,
) -> Backoff:
    """The wait before retry number `attempt` (1-based), from the step delays.

    `rand` in [0, 1] draws the jitter: the wait is `delay * (1 - jitter * rand)`,
    within [delay * (1 - jitter), delay]. A retry never waits longer than its
    step's delay: the step's queue TTL is the ceiling, and a message with a
    shorter expiration behind a longer one leaves no later than that TTL either.
    A Retry-After is a floor, honoured up to the longest step.
    """
    step = delay_step(delays, attempt, retry_after_s)
    delay = delays[step]
    wait = delay * (1.0 - min(max(jitter, 0.0), 1.0) * min(max(rand, 0.0), 1.0))
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, delay))
    return Backoff(step, wait)


@dataclass(frozen=True)
class Topology:
    namespace: str = "sendmesh"
    retry_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
    retry_jitter: float = RETRY_JITTER

    @property
    def work_exchange(self) -> str:
        return f"{self.namespace}.work"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def inbox_exchange(self) -> str:
        """Fan-out of new in-app messages to every inapp replica's watchers."""
        return f"{self.namespace}.inbox"

    def queue(self, stage: str) -> str:
        return f"{self.namespace}.{stage}"

    def delay_queue(self, step: int) -> str:
        """Also the name of the step's exchange."""
        return f"{self.namespace}.delay.{step}"

    def dead_letter_queue(self, stage: str) -> str:
        return f"{self.queue(stage)}.dead"

    def delay_step_for(self, attempt: int, at_least_s: float | None = None) -> int:
        """Back-off step for the given attempt (1-based), never shorter than `at_least_s`."""
        return delay_step(self.retry_delays_s, attempt, at_least_s)

    def backoff_for(
        self, attempt: int, retry_after_s: float | None = None, rand: float = 1.0
    ) -> Backoff:
        """The jittered wait of retry number `attempt` (see `compute_backoff`)."""
        return compute_backoff(
            self.retry_delays_s,
            attempt,
            retry_after_s=retry_after_s,
            jitter=self.retry_jitter,
            rand=rand,
        )

    def all_exchanges(self) -> list[str]:
        delays = [self.delay_queue(i) for i in range(len(self.retry_delays_s))]
        return [self.work_exchange, self.events_exchange, self.inbox_exchange, *delays]

    def stage_of(self, queue: str) -> str:
        return queue.removeprefix(self.namespace + ".")

    def all_queues(self, service_names: tuple[str, ...] = ()) -> list[str]:
        controls = dict.fromkeys((*CHANNELS, *CONTROLLED, *service_names))
        stages = [*work_stages(), EVENTS_INTAKE, *(control_stage(s) for s in controls)]
        stages.extend(feedback_stage(s) for s in FEEDBACK_CONSUMERS)
        names = [self.delay_queue(i) for i in range(len(self.retry_delays_s))]
        for stage in stages:
            names.append(self.queue(stage))
            names.append(self.dead_letter_queue(stage))
        return names


QUORUM: FieldTable = {"x-queue-type": "quorum"}


async def declare_stage(channel: AbstractChannel, topo: Topology, stage: str) -> None:
    """A work queue with its dead-letter queue."""
    dead = topo.dead_letter_queue(stage)
    await channel.declare_queue(dead, durable=True, arguments=QUORUM)
    await channel.declare_queue(
        topo.queue(stage),
        durable=True,
        arguments={
            **QUORUM,
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )


async def declare_delays(channel: AbstractChannel, topo: Topology) -> None:
    """One exchange and wait queue per back-off step, shared by every stage."""
    for step, delay in enumerate(topo.retry_delays_s):
        name = topo.delay_queue(step)
        exchange = await channel.declare_exchange(name, ExchangeType.FANOUT, durable=True)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                **QUORUM,
                "x-message-ttl": int(delay * 1000),
                # No dead-letter routing key: the message keeps its stage.
                "x-dead-letter-exchange": topo.work_exchange,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )
        await queue.bind(exchange)


async def declare(channel: AbstractChannel, topo: Topology, services: tuple[str, ...] = ()) -> None:
    """Declare everything; idempotent, run by every service at start-up."""
    work = await channel.declare_exchange(topo.work_exchange, ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(topo.events_exchange, ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(topo.inbox_exchange, ExchangeType.FANOUT, durable=True)
    await declare_delays(channel, topo)
    for stage in work_stages():
        await declare_stage(channel, topo, stage)
        queue = await channel.get_queue(topo.queue(stage), ensure=False)
        await queue.bind(work, routing_key=stage)
    await _declare_bound(channel, topo, EVENTS_INTAKE, work, events, EVENTS_DELIVERY_KEY)
    # Every channel worker's control queue exists whoever starts first, so a
    # cancellation published before a worker ever ran is kept, not unroutable.
    for service in dict.fromkeys((*CHANNELS, *CONTROLLED, *services)):
        stage = control_stage(service)
        await _declare_bound(channel, topo, stage, work, events, *CONTROL_KEYS)
    # Declared by every service too: feedback published before eligibility or
    # profile ever ran waits for them.
    for service in FEEDBACK_CONSUMERS:
        stage = feedback_stage(service)
        await _declare_bound(channel, topo, stage, work, events, EVENTS_FEEDBACK_KEY)


async def _declare_bound(
    channel: AbstractChannel,
    topo: Topology,
    stage: str,
    work: aio_pika.abc.AbstractExchange,
    events: aio_pika.abc.AbstractExchange,
    *keys: str,
) -> None:
    await declare_stage(channel, topo, stage)
    queue = await channel.get_queue(topo.queue(stage), ensure=False)
    # Bound to work too, so its delay queues can route retries back to it.
    await queue.bind(work, routing_key=stage)
    for key in keys:
        await queue.bind(events, routing_key=key)
