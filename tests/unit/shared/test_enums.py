"""Bound enum values are ordinary attributes with the same values."""

from __future__ import annotations

from sendmesh.bus.v1 import feedback_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from shared.enums import bind_all


def test_every_value_is_bound_as_itself():
    assert bind_all() >= 5
    for wrapper in (intent_pb2.Channel, intent_pb2.DeliveryState, intake_pb2.IntentState):
        for name, number in wrapper.items():
            assert vars(wrapper)[name] == number == getattr(wrapper, name)
    assert vars(feedback_pb2.FeedbackKind)  # a second module's enums too


def test_the_wrapper_still_answers_everything_else():
    bind_all()  # twice: harmless
    channel = intent_pb2.Channel
    assert channel.Name(channel.CHANNEL_SMS) == "CHANNEL_SMS"
    assert channel.Value("CHANNEL_INAPP") == intent_pb2.CHANNEL_INAPP
    assert dict(channel.items())["CHANNEL_EMAIL"] == intent_pb2.CHANNEL_EMAIL
