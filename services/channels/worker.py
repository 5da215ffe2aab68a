"""send.<channel> queue -> provider -> events (and delay or dead-letter queues).

Per consumed batch: skip cancelled intents, skip deliveries already sent,
claim the rest (one statement), send them in one provider call (one per
burst-sized slice under a rate limit), record the outcomes (one statement),
and report everything in one EventBatch, with any provider feedback (hard
bounces) as one FeedbackBatch in the same confirmed publish.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sendmesh.bus.v1 import envelope_pb2, feedback_pb2
from sendmesh.intent.v1 import intent_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from services.channels import feedback, store
from services.channels.outcomes import RECORD_STATE, Action, action_for
from services.channels.prepare import PrepareCache, prepare
from services.channels.provider import OutgoingMessage, Provider, SendResult, transient
from services.channels.ratelimit import TokenBucket, chunks
from services.channels.recheck import BehaviourRecheck
from shared import envelopes, metrics, reasons, tracing
from shared.bus import topology
from shared.bus.consumer import dead_letter, retry_later
from shared.bus.publisher import Bus, Outbound, to_events, to_stage
from shared.clock import from_timestamp, now_timestamp, utcnow
from shared.envelopes import State, StateValue
from shared.errors import PermanentError, TransientError
from shared.logs import get_logger

log = get_logger(__name__)

Envelope = envelope_pb2.Envelope
Delivery = envelope_pb2.Delivery


class Item(NamedTuple):
    """One delivery of one consumed envelope (a NamedTuple: one is made per
    delivery on a fan-out, and frozen dataclasses are slow to build)."""

    env: Envelope
    delivery: Delivery
    # Read many times per delivery: worked out once, by `of`.
    key: store.DeliveryKey

    @classmethod
    def of(cls, env: Envelope, delivery: Delivery) -> Item:
        return cls(env, delivery, (env.tenant_id, delivery.delivery_id))


@dataclass
class Report:
    """What a batch produces: events, and envelopes for delay or dead-letter queues."""

    # One decision per kind per batch: made at the same moment, counted at the end.
    decided: envelopes.BatchDecisions
    events: list[envelope_pb2.DeliveryEvent] = field(default_factory=list)
    retries: dict[tuple[int, int], list[tuple[Item, SendResult]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead: dict[int, list[tuple[Item, SendResult, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    # Deliveries that will never be sent: frequency gives their cap slots back.
    released: list[envelope_pb2.DeliveryEvent] = field(default_factory=list)
    # Hard bounces and the like: published with the events, before the ack.
    feedback: list[feedback_pb2.Feedback] = field(default_factory=list)
    # Metric updates, added up over the batch: one .inc(n) per label set.
    counts: Counter[str] = field(default_factory=Counter)


def replayed_at(delivery: Delivery) -> datetime | None:
    """When the delivery was last replayed from dead letters, if it ever was."""
    replays = [d.at for d in delivery.decisions if d.reason == reasons.REPLAYED]
    return from_timestamp(replays[-1]) if replays else None


class ChannelWorker:
    def __init__(
        self,
        bus: Bus,
        engine: AsyncEngine,
        provider: Provider,
        channel: str,
        max_attempts: int,
        recheck: BehaviourRecheck | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.recheck = recheck
        # The provider's rate limit; None: unlimited.
        self.bucket = bucket
        self.bus = bus
        self.engine = engine
        self.provider = provider
        self.channel = channel
        self.stage = topology.send_stage(channel)
        self.max_attempts = max_attempts

    async def handle(self, batch: list[Envelope]) -> list[Outbound]:
        report = Report(envelopes.BatchDecisions(self.channel))
        items = await self._not_cancelled(batch, report)
        items = await self._still_wanted(items, report)
        claimed = await self._claim(items, report)
        to_send = [item for item in items if item.key in claimed]
        results = await self._send(to_send, report)
        actions = {
            item.key: action_for(results[item.key], claimed[item.key], self.max_attempts)
            for item in to_send
        }
        await self._record(to_send, results, actions)
        await self._prune_gone(to_send, results)
        self._collect_feedback(to_send, results, report)
        sent: Counter[tuple[int, datetime | None]] = Counter()  # (envelope, due) -> sent
        for item in to_send:
            action = actions[item.key]
            self._report(item, results[item.key], action, claimed[item.key], report)
            if action == "sent":
                sent[(id(item.env), due_at(item.delivery))] += 1
        self._observe_latency(to_send, sent)
        self._flush_metrics(report)
        return self._outbound(report)

    async def _not_cancelled(self, batch: list[Envelope], report: Report) -> list[Item]:
        """Every delivery once, less those of cancelled intents (reported CANCELLED)."""
        cancelled = await store.cancelled_intents(
            self.engine, {(env.tenant_id, env.intent_id) for env in batch}
        )
        items: list[Item] = []
        seen: set[store.DeliveryKey] = set()
        for env in batch:
            for delivery in env.deliveries:
                item = Item.of(env, delivery)
                if item.key in seen:
                    report.counts["duplicate"] += 1  # the same envelope twice in one batch
                elif (env.tenant_id, env.intent_id) in cancelled:
                    self._event(item, State.DELIVERY_STATE_CANCELLED, reasons.CANCELLED, report)
                    report.counts["cancelled"] += 1
                else:
                    items.append(item)
                seen.add(item.key)
        return items

    async def _still_wanted(self, items: list[Item], report: Report) -> list[Item]:
        """Less the deliveries whose behaviour rules match now (reported, slots released)."""
        if self.recheck is None:
            return items
        excluded = await self.recheck.excluded(items)
        kept: list[Item] = []
        for item in items:
            detail = excluded.get(item.key)
            if detail is None:
                kept.append(item)
                continue
            state = State.DELIVERY_STATE_SUPPRESSED
            self._event(item, state, reasons.EXCLUDED_BY_RULE, report, detail)
            report.released.append(report.events[-1])
            report.counts["excluded"] += 1
        return kept

    async def _claim(self, items: list[Item], report: Report) -> dict[store.DeliveryKey, int]:
        """Attempt counts of the deliveries to send now; those already sent are skipped."""
        claims = [
            store.Claim(*item.key, item.env.intent_id, replayed_at(item.delivery)) for item in items
        ]
        claimed = await store.claim(self.engine, claims, self.provider.name)
        for item in items:
            if item.key not in claimed:
                self._report_again(item, report)
                report.counts["duplicate"] += 1
        return claimed

    def _report_again(self, item: Item, report: Report) -> None:
        """Report SENT again for a delivery sent before: the first report may be
        the one that was lost (a crash after recording, before publishing).
        Not counted as a new decision; event consumers must be idempotent anyway."""
        dec = intent_pb2.Decision(
            stage=self.channel,
            state=State.DELIVERY_STATE_SENT,
            reason=reasons.SENT,
            detail="already sent; reported again",
            at=now_timestamp(),
        )
        report.events.append(
            envelopes.event_for(item.env, item.delivery, dec, provider=self.provider.name)
        )

    async def _send(self, items: list[Item], report: Report) -> dict[store.DeliveryKey, SendResult]:
        """Each item's result: unsendable ones fail here, the rest go to the provider."""
        results: dict[store.DeliveryKey, SendResult] = {}
        messages: dict[str, tuple[Item, OutgoingMessage]] = {}
        cache = PrepareCache()
        for item in items:
            prepared = prepare(item.env, item.delivery, self.channel, cache)
            if isinstance(prepared, SendResult):
                results[item.key] = prepared
            else:
                messages[prepared.delivery_id] = (item, prepared)
        answers = await self._call_throttled([m for _, m in messages.values()])
        for delivery_id, (item, _) in messages.items():
            results[item.key] = answers.get(delivery_id) or transient(
                delivery_id, reasons.PROVIDER_ERROR, f"{self.provider.name} gave no answer"
            )
        return results

    async def _prune_gone(
        self, items: list[Item], results: dict[store.DeliveryKey, SendResult]
    ) -> None:
        if self.recheck is None:
            return
        for item in items:
            gone = list(results[item.key].gone_endpoints)
            if gone:
                await self.recheck.prune_subscriptions(
                    item.env.tenant_id, item.delivery.user_id, gone
                )

    def _collect_feedback(
        self, items: list[Item], results: dict[store.DeliveryKey, SendResult], report: Report
    ) -> None:
        """Answers that say the contact point is gone (a hard bounce) become
        Feedback, published in this batch's confirmed output."""
        now = utcnow()
        for item in items:
            found = feedback.from_result(
                item.env, item.delivery, self.channel, results[item.key], self.provider.name, now
            )
            if found is not None:
                report.feedback.append(found)

    async def _call_throttled(self, messages: Sequence[OutgoingMessage]) -> dict[str, SendResult]:
        """The provider called in slices of at most `burst` messages, each
        after the rate limit allows it. Waiting here is pacing, not a retry:
        keep SENDMESH_BATCH_SIZE near what the rate sends in a few seconds."""
        if self.bucket is None or not messages:
            return await self._call_provider(messages)
        answers: dict[str, SendResult] = {}
        for part in chunks(messages, self.bucket.burst):
            wait = self.bucket.take(len(part))
            if wait > 0:
                metrics.PROVIDER_THROTTLED.labels(self.channel, self.provider.name).inc(wait)
                await asyncio.sleep(wait)
            answers.update(await self._call_provider(part))
        return answers

    async def _record(
        self,
        items: list[Item],
        results: dict[store.DeliveryKey, SendResult],
        actions: dict[store.DeliveryKey, Action],
    ) -> None:
        outcomes = [
            store.Outcome(
                *item.key, RECORD_STATE[actions[item.key]], results[item.key].provider_message_id
            )
            for item in items
        ]
        await store.record_outcomes(self.engine, outcomes)

    async def _call_provider(self, messages: Sequence[OutgoingMessage]) -> dict[str, SendResult]:
        if not messages:
            return {}
        timer = metrics.PROVIDER_CALL.labels(self.channel, self.provider.name).time()
        with tracing.provider_call(self.channel, self.provider.name, len(messages)) as span:
            try:
                with timer:
                    answers = await self.provider.send(messages)
            except TransientError as err:  # the whole call failed, e.g. the vendor is down
                tracing.call_outcome(span, "transient", len(messages), err.reason)
                return {
                    m.delivery_id: transient(
                        m.delivery_id, err.reason, err.detail, err.retry_after_s
                    )
                    for m in messages
                }
            except PermanentError as err:
                tracing.call_outcome(span, "permanent", len(messages), err.reason)
                return {
                    m.delivery_id: SendResult(m.delivery_id, "permanent", err.reason, err.detail)
                    for m in messages
                }
            not_sent = [answer for answer in answers if answer.outcome != "sent"]
            for answer in not_sent:
                reason = answer.reason if answer.reason in reasons.ALL else "other"
                metrics.PROVIDER_ERRORS.labels(self.channel, self.provider.name, reason).inc()
            tracing.call_outcome(span, "partial" if not_sent else "sent", len(not_sent))
        return {answer.delivery_id: answer for answer in answers}

    def _report(
        self, item: Item, result: SendResult, action: Action, attempts: int, report: Report
    ) -> None:
        if action == "sent":
            self._event(item, State.DELIVERY_STATE_SENT, reasons.SENT, report)
        elif action == "failed":
            reason = result.reason or reasons.PROVIDER_ERROR
            self._event(item, State.DELIVERY_STATE_FAILED, reason, report, result.detail)
            report.released.append(report.events[-1])
        elif action == "retry":
            report.retries[(id(item.env), attempts)].append((item, result))
        else:
            why = f"{result.reason}: {result.detail}" if result.detail else result.reason
            detail = f"after {attempts} attempts, {why}"
            self._event(item, State.DELIVERY_STATE_DEAD, reasons.MAX_ATTEMPTS, report, detail)
            report.released.append(report.events[-1])
            report.dead[id(item.env)].append((item, result, attempts))
        report.counts[{"retry": "retried"}.get(action, action)] += 1

    def _event(
        self, item: Item, state: StateValue, reason: str, report: Report, detail: str = ""
    ) -> None:
        # Not envelopes.event_for: on a fan-out this runs for every delivery,
        # and the trail is the delivery's decisions as they are (the new
        # decision is never among them).
        dec = report.decided.make(state, reason, detail)
        env, delivery = item.env, item.delivery
        report.events.append(
            envelope_pb2.DeliveryEvent(
                tenant_id=env.tenant_id,
                intent_id=env.intent_id,
                delivery_id=delivery.delivery_id,
                user_id=delivery.user_id,
                channel=delivery.channel,
                decision=dec,
                accepted_at=env.accepted_at,
                provider=self.provider.name,
                trail=delivery.decisions,
            )
        )

    def _flush_metrics(self, report: Report) -> None:
        for outcome, n in report.counts.items():
            self._count(outcome, n)
        report.decided.flush()

    def _outbound(self, report: Report) -> list[Outbound]:
        outs = [self._retry(group, attempts) for (_, attempts), group in report.retries.items()]
        outs.extend(self._dead_letter(group) for group in report.dead.values())
        if report.events:
            outs.append(to_events(self.bus.topology, envelopes.event_batch(report.events)))
        if report.released:
            batch = envelopes.event_batch(report.released)
            outs.append(to_stage(self.bus.topology, topology.RELEASE, batch))
        if report.feedback:
            outs.append(feedback.to_bus(self.bus.topology, report.feedback))
        return outs

    def _retry(self, group: list[tuple[Item, SendResult]], attempts: int) -> Outbound:
        """One envelope, with only the deliveries to retry, to its next delay queue."""
        env = group[0][0].env
        waits = [r.retry_after_s for _, r in group if r.retry_after_s is not None]
        body = envelopes.onward(env, [item.delivery for item, _ in group]).SerializeToString()
        return retry_later(
            self.bus, self.stage, body, attempts, retry_after_s=max(waits) if waits else None
        )

    def _dead_letter(self, group: list[tuple[Item, SendResult, int]]) -> Outbound:
        last = group[-1][1]
        onward = envelopes.onward(group[0][0].env, [item.delivery for item, _, _ in group])
        log.warning("dead_lettered", queue=self.stage, deliveries=len(group))
        return dead_letter(
            self.bus,
            self.stage,
            onward.SerializeToString(),
            onward.DESCRIPTOR.full_name,
            max(attempts for _, _, attempts in group),
            reasons.MAX_ATTEMPTS,
            f"{last.reason}: {last.detail}",
        )

    def _count(self, outcome: str, n: int = 1) -> None:
        if n:
            metrics.DELIVERIES.labels(self.channel, self.provider.name, outcome).inc(n)

    def _observe_latency(
        self, items: list[Item], sent: Counter[tuple[int, datetime | None]]
    ) -> None:
        """Submit -> sent latency, one observation per delivery sent, worked
        out once per envelope and due time (they share them)."""
        sent_at = utcnow()
        envs = {id(item.env): item.env for item in items}
        for (env_id, due), n in sent.items():
            env = envs[env_id]
            if env.HasField("accepted_at"):
                metrics.observe_sent(self.channel, from_timestamp(env.accepted_at), due, sent_at, n)


def due_at(delivery: Delivery) -> datetime | None:
    """When the delivery was due after the deferrals it waited out (quiet
    hours, send_at, a cap window: the scheduler releases it then); None if it
    was never deferred."""
    scheduled = State.DELIVERY_STATE_SCHEDULED
    times = [
        from_timestamp(d.not_before)
        for d in delivery.decisions
        if d.state == scheduled and d.HasField("not_before")
    ]
    return max(times, default=None)
