"""The RabbitMQ topology, declared in one place.

Names come from pure functions (dramatiq's q_name/dq_name/xq_name idea):

    <ns>.work            direct exchange; routing key = stage name
    <ns>.events          topic exchange; `delivery` (EventBatch), `intent.cancelled`,
                         `profile.erased`
    <ns>.<stage>         quorum work queue (plan, eligibility, frequency, send.inapp, ...)
    <ns>.delay.N         fan-out exchange and wait queue per back-off step, shared
                         by all stages: a retry is published there with its stage
                         as routing key, waits the step's fixed TTL, and is
                         dead-lettered to the work exchange with that key, so
                         it returns to its own stage
    <ns>.<stage>.dead    dead letters, with the reason in headers

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

# A message redelivered this often (crash loop, not our own retries) is
# dead-lettered by the broker itself.
DELIVERY_LIMIT = 20


def send_stage(channel: str) -> str:
    return f"send.{channel}"


def control_stage(service: str) -> str:
    """Per-service queue of cancellations and erasures."""
    return f"control.{service}"


def work_stages() -> tuple[str, ...]:
    return (PLAN, ELIGIBILITY, FREQUENCY, DEFERRED, RELEASE, *(send_stage(c) for c in CHANNELS))


@dataclass(frozen=True)
class Topology:
    namespace: str = "sendmesh"
    retry_delays_s: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)

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
        step = min(max(attempt - 1, 0), len(self.retry_delays_s) - 1)
        if at_least_s is not None:
            while step < len(self.retry_delays_s) - 1 and self.retry_delays_s[step] < at_least_s:
                step += 1
        return step

    def all_exchanges(self) -> list[str]:
        delays = [self.delay_queue(i) for i in range(len(self.retry_delays_s))]
        return [self.work_exchange, self.events_exchange, self.inbox_exchange, *delays]

    def stage_of(self, queue: str) -> str:
        return queue.removeprefix(self.namespace + ".")

    def all_queues(self, service_names: tuple[str, ...] = ()) -> list[str]:
        controls = dict.fromkeys((*CHANNELS, *CONTROLLED, *service_names))
        stages = [*work_stages(), EVENTS_INTAKE, *(control_stage(s) for s in controls)]
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
