"""Explain, end to end: validate the request, ask the stages, compose the answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import grpc
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2

from services.channels.content import Unrenderable, content_for
from services.intake import explain, validation
from services.intake.peers import Metadata, Peers
from services.templates.pinning import Located
from shared.clock import from_timestamp, utcnow
from shared.envelopes import CHANNEL_NAMES, ChannelValue
from shared.grpc import status
from shared.grpc.status import Violations

# Pins the intent's template (services/templates/pinning.py); raises INVALID_ARGUMENT.
Pin = Callable[[list[Located]], Awaitable[None]]
FAILED = intent_pb2.DeliveryState.DELIVERY_STATE_FAILED
WOULD_SEND = {
    intent_pb2.DeliveryState.DELIVERY_STATE_SENT,
    intent_pb2.DeliveryState.DELIVERY_STATE_SCHEDULED,
}
STAGE_NAMES = {"ProfilesStub": "profile", "EligibilityStub": "eligibility"}


def explained_intent(request: intake_pb2.ExplainRequest) -> intake_pb2.ExplainRequest:
    """The request with its intent addressed to the one recipient explained."""
    out = intake_pb2.ExplainRequest()
    out.CopyFrom(request)
    out.intent.audience.Clear()
    out.intent.audience.user_ids.append(request.user_id)
    return out


def validate(request: intake_pb2.ExplainRequest, now: datetime) -> None:
    problems = Violations()
    if not request.user_id.strip():
        problems.add("user_id", "the recipient to explain for is required")
    elif len(request.user_id) > 256:
        problems.add("user_id", "at most 256 characters")
    else:
        problems.extend(validation.validate_intent(request.intent, now, "intent"))
    problems.raise_if_any()


async def run_explain(
    peers: Peers,
    request: intake_pb2.ExplainRequest,
    metadata: Metadata,
    pin: Pin | None = None,
) -> intake_pb2.ExplainResponse:
    at = from_timestamp(request.at) if request.HasField("at") else utcnow()
    validate(explained_intent(request), at)
    intent = explained_intent(request).intent
    if pin is not None:
        await pin([("intent", intent)])
    try:
        found = await peers.profile(request.user_id, metadata)
        profile = profile_pb2.Profile() if found is None else found
        profile.user_id = request.user_id
        if intent.exclude_if:
            events = await peers.recent_events(request.user_id, intent.exclude_if, at, metadata)
            profile.recent_events.extend(events)

        async def check(when: datetime) -> dict[ChannelValue, explain.Decision]:
            return await peers.check(intent, profile, when, metadata)

        async def reserve(channel: ChannelValue, when: datetime) -> tuple[bool, explain.Decision]:
            return await peers.reserve_dry_run(intent, profile, channel, when, metadata)

        channels = await explain.explain(intent, found, at, check, reserve)
        fail_unrenderable(channels, intent, profile, at)
    except grpc.aio.AioRpcError as err:
        raise _stage_error(err) from None
    return intake_pb2.ExplainResponse(channels=channels)


def fail_unrenderable(
    channels: list[intake_pb2.ChannelExplanation],
    intent: intent_pb2.SendIntent,
    profile: profile_pb2.Profile,
    at: datetime,
) -> None:
    """A template that would not render for this recipient fails the channel,
    as the channel worker would (render_error naming the variable)."""
    if intent.content.WhichOneof("source") != "template":
        return
    for channel in channels:
        if channel.outcome not in WOULD_SEND:
            continue
        content = content_for(intent, channel.channel, profile)
        if isinstance(content, Unrenderable):
            name = CHANNEL_NAMES.get(channel.channel, str(channel.channel))
            failed = explain.step(name, FAILED, content.reason, at, content.detail)
            channel.steps.append(failed)
            channel.outcome = FAILED
            channel.reason = content.reason
            channel.summary = f"{name} failed: {content.reason} ({content.detail})"
            channel.ClearField("send_at")


def _stage_error(err: grpc.aio.AioRpcError) -> status.StatusError:
    """A stage that could not answer makes Explain unavailable, saying why."""
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return status.unavailable(f"a stage did not answer: {err.code().name}")
    return status.internal(f"a stage failed: {err.code().name}: {err.details()}")
