"""The pure parts of the channels phase: recipients, requests, outcomes, the
peers' settings, and how the table shows each channel."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console
from sendmesh.intent.v1 import intent_pb2

from cli.bench.channel_peers import PeerAddresses, new_vapid_pem, peer_env
from cli.bench.channels import (
    CATEGORY,
    DEV_SETUP,
    PEER_CHANNELS,
    ChannelResult,
    ProviderMode,
    channel_request,
    contact_profile,
    dev_subscription,
    outcomes,
    peers_not_run,
    phone_of,
    user_ids,
)
from cli.bench.report import BenchReport, channel_outcomes, report_table
from cli.bench.runner import ALL_PHASES, Phase, phases_of
from cli.bench.stats import summarize
from cli.intents import ChannelName
from cli.mesh import MeshConfig, service_env
from services.email.settings import EmailSettings
from services.profile.settings import ProfileSettings
from services.sms.settings import SmsSettings
from services.webpush.settings import WebPushSettings
from shared.settings import ServiceSettings

S = intent_pb2.DeliveryState


def result(**overrides: object) -> ChannelResult:
    fields: dict[str, object] = {
        "channel": "sms",
        "mode": "peers",
        "provider": "twilio",
        "submitted": 300,
        "sent": 297,
        "failed_submits": 0,
        "not_sent": {"failed: provider_rejected": 2},
        "undecided": 1,
        "seconds": 2.5,
        "sends_per_s": 118.8,
        "concurrency": 64,
        "latencies": summarize([10.0, 20.0, 30.0]),
        "peer_received": 297,
        **overrides,
    }
    return ChannelResult(**fields)  # type: ignore[arg-type]


def rendered(report: BenchReport) -> str:
    console = Console(file=io.StringIO(), width=400)
    console.print(report_table(report))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(text, str)
    return text


def test_all_phases_include_the_channels_phase():
    assert Phase.channels in ALL_PHASES
    assert phases_of([Phase.all]) == ALL_PHASES
    assert phases_of([Phase.channels]) == {Phase.channels}


def test_each_recipient_holds_exactly_the_contact_point_of_its_channel():
    email = contact_profile(ChannelName.email, "u1", 0, dev_subscription)
    sms = contact_profile(ChannelName.sms, "u2", 7, dev_subscription)
    push = contact_profile(ChannelName.webpush, "u3", 0, dev_subscription)
    inapp = contact_profile(ChannelName.inapp, "u4", 0, dev_subscription)
    assert (email.contacts.email, email.contacts.phone, len(email.contacts.webpush)) == (
        "u1@bench.sendmesh.invalid",
        "",
        0,
    )
    assert (sms.contacts.email, sms.contacts.phone) == ("", "+14155550007")
    [sub] = push.contacts.webpush
    assert sub.endpoint.startswith("https://") and sub.p256dh and sub.auth
    assert inapp.contacts == type(inapp.contacts)()


def test_phone_numbers_are_e164_and_distinct_for_ten_thousand_recipients():
    numbers = [phone_of(i) for i in range(10_000)]
    assert len(set(numbers)) == 10_000
    assert all(n.startswith("+1415555") and len(n) == 12 for n in numbers)


def test_recipients_are_distinct_per_channel_mode_and_run():
    a = user_ids("run1", ChannelName.sms, ProviderMode.dev, 3)
    b = user_ids("run1", ChannelName.sms, ProviderMode.peers, 3)
    c = user_ids("run2", ChannelName.sms, ProviderMode.dev, 3)
    assert len(set(a) | set(b) | set(c)) == 9


@pytest.mark.parametrize("channel", list(ChannelName))
def test_a_request_is_transactional_on_its_one_channel_with_content_for_it(channel: ChannelName):
    intent = channel_request(channel, "u1").intent
    assert intent.kind == intent_pb2.KIND_TRANSACTIONAL
    assert intent.category == CATEGORY
    assert list(intent.audience.user_ids) == ["u1"]
    assert len(intent.channels) == 1
    inline = intent.content.inline
    assert [f.name for f, _ in inline.ListFields()] == [channel.value]


def test_outcomes_name_each_failure_by_state_and_reason_and_add_up():
    ended = {
        "a": (S.DELIVERY_STATE_SENT, 1.0),
        "b": (S.DELIVERY_STATE_FAILED, 1.0),
        "c": (S.DELIVERY_STATE_FAILED, 1.0),
        "d": (S.DELIVERY_STATE_DEAD, 1.0),
    }
    reasons = {"a": "sent", "b": "provider_rejected", "c": "provider_rejected", "d": ""}
    got = outcomes(ended, reasons, ["a", "b", "c", "d", "e"])
    assert got.sent == 1
    assert got.not_sent == {"dead: no reason": 1, "failed: provider_rejected": 2}
    assert got.undecided == 1
    assert got.sent + sum(got.not_sent.values()) + got.undecided == 5


def test_the_peer_env_is_accepted_by_each_channels_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ca = tmp_path / "relay.crt"
    ca.write_text("not read by the settings")
    addresses = PeerAddresses(2525, ca, "http://127.0.0.1:8080", "AC" + "0" * 32, "token")
    env = peer_env(addresses, new_vapid_pem())
    classes: dict[str, type[ServiceSettings]] = {
        "email": EmailSettings,
        "sms": SmsSettings,
        "webpush": WebPushSettings,
        "profile": ProfileSettings,
    }
    for channel, cls in classes.items():
        with monkeypatch.context() as m:
            for name, value in env[channel].items():
                m.setenv(name, value)
            settings = cls()
        if channel == "profile":  # accepts the peer's http push subscriptions
            assert settings.model_dump()["webpush_allow_http"] is True
        else:
            assert settings.model_dump()["provider"] == env[channel]["SENDMESH_PROVIDER"]
    assert set(env) == {c.value for c in PEER_CHANNELS} | {"profile"}


def test_extra_env_reaches_only_its_service_and_wins_over_the_inherited(tmp_path: Path):
    cfg = MeshConfig(var_dir=tmp_path, extra_env={"sms": {"SENDMESH_PROVIDER": "twilio"}})
    inherited = {"SENDMESH_PROVIDER": "dev"}
    assert service_env(cfg, "sms", {}, inherited)["SENDMESH_PROVIDER"] == "twilio"
    assert service_env(cfg, "email", {}, inherited)["SENDMESH_PROVIDER"] == "dev"


def test_the_outcomes_line_adds_up_to_the_submitted_and_says_what_the_peer_took():
    line = channel_outcomes(result())
    assert line == (
        "sent 297 + failed: provider_rejected 2 + undecided 1 = 300 submitted; the peer took 297"
    )


def test_the_table_shows_rate_mode_and_latencies_per_channel():
    dev = result(channel="inapp", mode="dev", provider="inbox", not_sent={}, peer_received=None)
    text = rendered(BenchReport(100, 64, 512, channels=(dev, result())))
    assert "inapp via inbox (dev)" in text
    assert "sms via twilio (peers)" in text
    assert "118.8 sends/s" in text
    assert "closed loop, 64 in flight" in text
    assert "20.0 / 29.8 ms" in text
    assert "in-app has no external provider" in text


def test_a_mode_that_could_not_run_is_shown_as_not_measured_and_null_in_json():
    skipped = peers_not_run("no peers here")
    assert [s.channel for s in skipped] == ["email", "sms", "webpush"]
    report = BenchReport(100, 64, 512, channels=skipped)
    assert "not measured: no peers here" in rendered(report)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["channels"][0]["sends_per_s"] is None
    assert data["channels"][0]["skipped"] == "no peers here"
    assert math.isnan(skipped[0].seconds)


def test_the_dev_setup_names_the_dev_providers_and_the_inbox():
    assert dict(DEV_SETUP.providers) == {
        "email": "dev",
        "sms": "dev",
        "webpush": "dev",
        "inapp": "inbox",
    }
    assert DEV_SETUP.received(ChannelName.email) is None
