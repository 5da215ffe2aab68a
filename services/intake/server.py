"""Intake gRPC API: proto <-> domain and status mapping, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from functools import partial

import grpc
from sendmesh.bus.v1 import envelope_pb2
from sendmesh.intake.v1 import intake_pb2, intake_pb2_grpc
from sendmesh.intent.v1 import intent_pb2

from services.intake import lifecycle, validation
from services.intake.explainer import run_explain
from services.intake.peers import Peers
from services.intake.store import (
    DecisionRow,
    DeliveryRow,
    IntakeStore,
    IntentRow,
    NewIntent,
    OutboxMessage,
    Stored,
)
from services.templates.pinning import Located, TemplatePinner
from shared import metrics, tracing
from shared.auth import current_tenant, key_from_metadata
from shared.batching import GroupCommit
from shared.bus.broadcast import Broadcast
from shared.clock import now_timestamp, to_timestamp, utcnow
from shared.grpc import status
from shared.grpc.status import Violations
from shared.ids import new_id

I = intake_pb2.IntentState  # noqa: E741
KIND_NAMES = {
    v.number: v.name.removeprefix("KIND_").lower() for v in intent_pb2.Kind.DESCRIPTOR.values
}
ENVELOPE_TYPE = envelope_pb2.Envelope.DESCRIPTOR.full_name
CANCELLED_TYPE = envelope_pb2.ControlEvent.DESCRIPTOR.full_name
# How often a watcher re-reads the database while no event arrives.
WATCH_RECHECK_S = 1.0


def new_intent(tenant: str, intent: intent_pb2.SendIntent) -> NewIntent:
    """An accepted intent and the envelope the outbox will publish for it."""
    intent_id, now = new_id(), utcnow()
    envelope = envelope_pb2.Envelope(
        tenant_id=tenant,
        intent_id=intent_id,
        intent=intent,
        accepted_at=to_timestamp(now),
        # The Submit call's trace goes on from the outbox row (empty when off).
        trace_context=tracing.current_carrier(),
    )
    return NewIntent(
        intent_id=intent_id,
        tenant_id=tenant,
        idempotency_key=intent.idempotency_key,
        fingerprint=validation.fingerprint(intent),
        cancel_key=intent.cancel_key or None,
        accepted_at=now,
        payload=intent.SerializeToString(),
        envelope=envelope.SerializeToString(),
        envelope_type=ENVELOPE_TYPE,
        kind=intent.kind,
    )


def reuse_error(intent_id: str) -> status.StatusError:
    return status.already_exists(
        "IDEMPOTENCY_KEY_REUSED",
        f"idempotency key already used for intent {intent_id} with different content",
        "intent.idempotency_key",
    )


class IntakeServicer(intake_pb2_grpc.IntakeServicer):
    def __init__(
        self,
        store: IntakeStore,
        committer: GroupCommit[NewIntent, Stored],
        watch: Broadcast[envelope_pb2.DeliveryEvent],
        outbox_written: Callable[[Iterable[OutboxMessage]], None],
        peers: Peers | None = None,
        pinner: TemplatePinner | None = None,
    ) -> None:
        self._store = store
        # Pins template intents to a version at submit (None: no template store).
        self._pinner = pinner
        self._committer = committer
        self._watch = watch
        # Hands rows to the outbox relay after a write outside the group commit.
        self._outbox_written = outbox_written
        self._peers = peers

    async def Submit(
        self, request: intake_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.SubmitResponse:
        problems = Violations()
        problems.extend(validation.validate_intent(request.intent, utcnow(), "intent"))
        problems.raise_if_any()
        await self._pin(current_tenant(), [("intent", request.intent)])
        stored = await self._committer.submit(new_intent(current_tenant(), request.intent))
        if stored.conflict:
            raise reuse_error(stored.intent_id)
        return intake_pb2.SubmitResponse(
            intent_id=stored.intent_id,
            duplicate=stored.duplicate,
            accepted_at=to_timestamp(stored.accepted_at),
        )

    async def SubmitBatch(
        self, request: intake_pb2.SubmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.SubmitBatchResponse:
        problems = Violations()
        problems.extend(validation.validate_batch(list(request.intents), utcnow()))
        problems.raise_if_any()
        tenant = current_tenant()
        await self._pin(tenant, [(f"intents[{i}]", x) for i, x in enumerate(request.intents)])
        stored = await store_and_count(
            self._store, [new_intent(tenant, i) for i in request.intents]
        )
        self._outbox_written(s.outbox for s in stored if s.outbox is not None)
        response = intake_pb2.SubmitBatchResponse()
        for item in stored:
            result = response.results.add(
                intent_id=item.intent_id,
                duplicate=item.duplicate,
                accepted_at=to_timestamp(item.accepted_at),
            )
            if item.conflict:
                result.error.CopyFrom(reuse_error(item.intent_id).status)
        return response

    async def Explain(
        self, request: intake_pb2.ExplainRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.ExplainResponse:
        if self._peers is None:
            raise status.unavailable("explain is not configured on this intake")
        # The stages answer for the caller's tenant: they see the caller's key.
        key = key_from_metadata(context.invocation_metadata()) or ""
        metadata = (("authorization", f"Bearer {key}"),)
        return await run_explain(
            self._peers, request, metadata, partial(self._pin, current_tenant())
        )

    async def _pin(self, tenant: str, intents: Sequence[Located]) -> None:
        """Pins every template intent (in place) to the version it names;
        INVALID_ARGUMENT naming the field when a template or version is unknown."""
        if self._pinner is not None:
            problems = Violations()
            problems.extend(await self._pinner.pin(tenant, intents))
            problems.raise_if_any()

    async def GetIntent(
        self, request: intake_pb2.GetIntentRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.GetIntentResponse:
        row = await self._find(request.intent_id)
        deliveries, history = await self._store.deliveries(row.tenant_id, row.intent_id)
        return intake_pb2.GetIntentResponse(intent=intent_view(row, deliveries, history))

    async def CancelIntent(
        self, request: intake_pb2.CancelIntentRequest, context: grpc.aio.ServicerContext
    ) -> intake_pb2.CancelIntentResponse:
        target = request.WhichOneof("target")
        value = getattr(request, target) if target else ""
        if not value:
            raise status.invalid_argument([("target", "intent_id or cancel_key is required")])
        tenant = current_tenant()

        def announce(intent_id: str) -> tuple[str, bytes]:
            cancelled = envelope_pb2.IntentCancelled(
                tenant_id=tenant, intent_id=intent_id, at=now_timestamp()
            )
            msg = envelope_pb2.ControlEvent(intent_cancelled=cancelled)
            return CANCELLED_TYPE, msg.SerializeToString()

        if target == "intent_id":
            await self._find(value)
            sent = await self._store.cancel(tenant, utcnow(), announce, intent_id=value)
        else:
            sent = await self._store.cancel(tenant, utcnow(), announce, cancel_key=value)
        self._outbox_written(sent)
        return intake_pb2.CancelIntentResponse(intent_ids=[m.intent_id for m in sent])

    async def WatchIntent(
        self, request: intake_pb2.WatchIntentRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[intake_pb2.IntentUpdate]:
        row = await self._find(request.intent_id)
        key = (row.tenant_id, row.intent_id)
        # Subscribe before reading, so nothing falls between snapshot and stream.
        async with self._watch.subscribe(key) as queue:
            deliveries, history = await self._store.deliveries(*key)
            view = intent_view(row, deliveries, history)
            states = {d.delivery_id: d.current.state for d in view.deliveries}
            yield intake_pb2.IntentUpdate(intent_id=row.intent_id, state=view.state)
            for d in view.deliveries:
                yield intake_pb2.IntentUpdate(intent_id=row.intent_id, state=view.state, delivery=d)
            cancelled = row.cancelled_at is not None
            while lifecycle.intent_state(cancelled, states.values()) not in DONE:
                try:
                    event = await asyncio.wait_for(queue.get(), WATCH_RECHECK_S)
                except TimeoutError:
                    fresh = await self._store.get_intent(*key)
                    cancelled = fresh is not None and fresh.cancelled_at is not None
                    if cancelled:
                        yield intake_pb2.IntentUpdate(
                            intent_id=row.intent_id, state=I.INTENT_STATE_CANCELLED
                        )
                    continue
                states[event.delivery_id] = event.decision.state
                state = lifecycle.intent_state(cancelled, states.values())
                yield intake_pb2.IntentUpdate(
                    intent_id=row.intent_id, state=state, delivery=status_from_event(event)
                )

    async def _find(self, intent_id: str) -> IntentRow:
        if not intent_id:
            raise status.invalid_argument([("intent_id", "required")])
        # Scoped by tenant: another tenant's intent is simply not found.
        row = await self._store.get_intent(current_tenant(), intent_id)
        if row is None:
            raise status.not_found("intent", intent_id)
        return row


DONE = frozenset({I.INTENT_STATE_COMPLETED, I.INTENT_STATE_CANCELLED})


async def store_and_count(store: IntakeStore, items: Sequence[NewIntent]) -> list[Stored]:
    """The group-commit flush: one transaction for every waiting submit."""
    stored = await store.store_intents(items)
    for item, result in zip(items, stored, strict=True):
        if not result.duplicate and not result.conflict:
            metrics.INTENTS_RECEIVED.labels(KIND_NAMES.get(item.kind, "unknown")).inc()
    return stored


def intent_view(
    row: IntentRow, deliveries: list[DeliveryRow], history: list[DecisionRow]
) -> intake_pb2.Intent:
    by_delivery: dict[str, list[DecisionRow]] = {}
    for h in history:
        by_delivery.setdefault(h.delivery_id, []).append(h)
    view = intake_pb2.Intent(
        intent_id=row.intent_id,
        state=lifecycle.intent_state(row.cancelled_at is not None, (d.state for d in deliveries)),
        accepted_at=to_timestamp(row.accepted_at),
        updated_at=to_timestamp(max([row.accepted_at, *(d.at for d in deliveries)])),
        intent=intent_pb2.SendIntent.FromString(row.payload),
    )
    for d in deliveries:
        view.deliveries.add(
            delivery_id=d.delivery_id,
            user_id=d.user_id,
            channel=intent_pb2.Channel.ValueType(d.channel),
            current=_decision(d),
            history=[_decision(h) for h in by_delivery.get(d.delivery_id, [])],
        )
    return view


def status_from_event(event: envelope_pb2.DeliveryEvent) -> intake_pb2.DeliveryStatus:
    return intake_pb2.DeliveryStatus(
        delivery_id=event.delivery_id,
        user_id=event.user_id,
        channel=event.channel,
        current=event.decision,
        history=[*event.trail, event.decision],
    )


def _decision(row: DeliveryRow | DecisionRow) -> intent_pb2.Decision:
    decision = intent_pb2.Decision(
        stage=row.stage,
        state=intent_pb2.DeliveryState.ValueType(row.state),
        reason=row.reason,
        detail=row.detail,
        at=to_timestamp(row.at),
    )
    if row.not_before is not None:
        decision.not_before.CopyFrom(to_timestamp(row.not_before))
    return decision
