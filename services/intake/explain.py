"""Explain: what every stage would decide for one recipient, and the outcome.

Pure composition of the stages' own answers (their Check / dry-run Reserve
RPCs), so an explanation never drifts from what the pipeline does. The
calls themselves live in services/intake/peers.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from shared import reasons
from shared.clock import from_timestamp, to_timestamp
from shared.envelopes import CHANNEL_NAMES, STATE_NAMES, ChannelValue

State = intent_pb2.DeliveryState
Decision = intent_pb2.Decision
FIRST = intent_pb2.Strategy.STRATEGY_FIRST_AVAILABLE
DEFER = intent_pb2.CapAction.CAP_ACTION_DEFER
# A delivery deferred (quiet hours, then a cap...) is followed this many times.
MAX_DEFERRALS = 3

# Eligibility's answer per channel, as of an instant.
CheckFn = Callable[[datetime], Awaitable[dict[ChannelValue, Decision]]]
# Frequency's dry-run answer for one channel, as of an instant: (granted, decision).
ReserveFn = Callable[[ChannelValue, datetime], Awaitable[tuple[bool, Decision]]]


@dataclass
class Trace:
    """One channel's path so far."""

    channel: ChannelValue
    steps: list[Decision] = field(default_factory=list)
    outcome: int = State.DELIVERY_STATE_PENDING
    reason: str = ""
    send_at: datetime | None = None
    deferrals: int = 0


def profile_step(profile: profile_pb2.Profile | None, at: datetime) -> Decision:
    reason = reasons.PLANNED if profile is not None else reasons.UNKNOWN_RECIPIENT
    return step("profile", State.DELIVERY_STATE_PENDING, reason, at)


def step(stage: str, state: int, reason: str, at: datetime, detail: str = "") -> Decision:
    return Decision(
        stage=stage,
        state=intent_pb2.DeliveryState.ValueType(state),
        reason=reason,
        detail=detail,
        at=to_timestamp(at),
    )


def not_before(decision: Decision) -> datetime | None:
    return from_timestamp(decision.not_before) if decision.HasField("not_before") else None


async def explain(
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile | None,
    at: datetime,
    check: CheckFn,
    reserve: ReserveFn,
) -> list[intake_pb2.ChannelExplanation]:
    traces = {ch: Trace(ch, [profile_step(profile, at)]) for ch in intent.channels}
    # Channels still to decide, by the instant they are decided at: a deferred
    # channel is followed to its due time and checked again there.
    waiting: dict[datetime, list[ChannelValue]] = {at: list(intent.channels)}
    rounds = 0
    while waiting and rounds < (MAX_DEFERRALS + 1) * len(traces):
        rounds += 1
        when = min(waiting)
        deferred = await _round(intent, traces, waiting.pop(when), when, check, reserve)
        for ch in deferred:
            trace = traces[ch]
            if trace.send_at is not None and trace.deferrals <= MAX_DEFERRALS:
                waiting.setdefault(max(trace.send_at, when), []).append(ch)
    return [summarise(traces[ch]) for ch in intent.channels]


async def _round(
    intent: intent_pb2.SendIntent,
    traces: dict[ChannelValue, Trace],
    channels: Sequence[ChannelValue],
    when: datetime,
    check: CheckFn,
    reserve: ReserveFn,
) -> list[ChannelValue]:
    """One pass through eligibility and frequency at `when`; returns the deferred channels."""
    decided = await check(when)
    allowed: list[ChannelValue] = []
    deferred: list[ChannelValue] = []
    for ch in channels:
        dec = decided.get(ch) or step("eligibility", State.DELIVERY_STATE_PENDING, "", when)
        trace = traces[ch]
        trace.steps.append(dec)
        if dec.state == State.DELIVERY_STATE_PENDING:
            allowed.append(ch)
        elif dec.state == State.DELIVERY_STATE_SCHEDULED and not_before(dec):
            _defer(trace, dec)
            deferred.append(ch)
        else:
            _finish(trace, dec.state, dec.reason)
    deferred += await _frequency(intent, traces, allowed, when, reserve)
    return deferred


async def _frequency(
    intent: intent_pb2.SendIntent,
    traces: dict[ChannelValue, Trace],
    allowed: list[ChannelValue],
    when: datetime,
    reserve: ReserveFn,
) -> list[ChannelValue]:
    """Caps and channel choice, as the frequency stage applies them."""
    deferred: list[ChannelValue] = []
    chosen = False
    capped: list[tuple[ChannelValue, Decision]] = []
    for ch in allowed:
        trace = traces[ch]
        if intent.strategy == FIRST and chosen:
            dec = step("frequency", State.DELIVERY_STATE_SKIPPED, reasons.FALLBACK_NOT_NEEDED, when)
            trace.steps.append(dec)
            _finish(trace, dec.state, dec.reason)
            continue
        granted, dec = await reserve(ch, when)
        trace.steps.append(dec)
        if granted:
            chosen = True
            _finish(trace, State.DELIVERY_STATE_SENT, reasons.SENT, when)
        else:
            capped.append((ch, dec))
    for ch, dec in capped:
        trace = traces[ch]
        if intent.strategy == FIRST and chosen:
            _finish(trace, State.DELIVERY_STATE_SKIPPED, reasons.FALLBACK_NOT_NEEDED)
        elif intent.on_capped == DEFER and not_before(dec) and _before_expiry(intent, dec):
            _defer(trace, dec)
            deferred.append(ch)
        else:
            _finish(trace, State.DELIVERY_STATE_CAPPED, dec.reason or reasons.CAPPED)
    return deferred


def _before_expiry(intent: intent_pb2.SendIntent, dec: Decision) -> bool:
    if not intent.timing.HasField("expires_at"):
        return True
    due = not_before(dec)
    return due is not None and due <= from_timestamp(intent.timing.expires_at)


def _defer(trace: Trace, dec: Decision) -> None:
    trace.deferrals += 1
    trace.outcome = State.DELIVERY_STATE_SCHEDULED
    trace.reason = dec.reason
    trace.send_at = not_before(dec)


def _finish(trace: Trace, state: int, reason: str, send_at: datetime | None = None) -> None:
    trace.outcome = state
    trace.reason = reason
    if state == State.DELIVERY_STATE_SENT:
        trace.send_at = send_at
    elif state != State.DELIVERY_STATE_SCHEDULED:
        trace.send_at = None


def summarise(trace: Trace) -> intake_pb2.ChannelExplanation:
    out = intake_pb2.ChannelExplanation(
        channel=trace.channel,
        outcome=intent_pb2.DeliveryState.ValueType(trace.outcome),
        reason=trace.reason,
        summary=summary_line(trace),
        steps=trace.steps,
    )
    if trace.send_at is not None:
        out.send_at.CopyFrom(_ts(trace.send_at))
    return out


def summary_line(trace: Trace) -> str:
    """'webpush sent at 2026-11-23T19:00:00Z', 'email suppressed: opted_out (...)'."""
    channel = CHANNEL_NAMES.get(trace.channel, str(trace.channel))
    state = STATE_NAMES.get(trace.outcome, "unknown")
    when = trace.send_at.strftime("%Y-%m-%dT%H:%M:%SZ") if trace.send_at else ""
    if trace.outcome == State.DELIVERY_STATE_SENT:
        deferred = any(s.state == State.DELIVERY_STATE_SCHEDULED for s in trace.steps)
        return f"{channel} would be sent at {when}" + (" (after waiting)" if deferred else "")
    if trace.outcome == State.DELIVERY_STATE_SCHEDULED:
        return f"{channel} scheduled for {when}: {trace.reason}"
    detail = next((s.detail for s in reversed(trace.steps) if s.reason == trace.reason), "")
    return f"{channel} {state}: {trace.reason}" + (f" ({detail})" if detail else "")


def _ts(at: datetime) -> Timestamp:
    return to_timestamp(at)
