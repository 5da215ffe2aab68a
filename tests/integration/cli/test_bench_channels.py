"""`sendmesh bench --phase channels` end to end, with five intents a channel:
two fresh meshes (dev providers; real providers against the local peers) on
the real broker, the figures read from --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SENDMESH = str(Path(sys.executable).parent / "sendmesh")
N = 5
# Two mesh start-ups on a loaded machine: a give-up bound, not a speed claim.
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def figures(amqp_url: str) -> dict[str, Any]:
    args = ["bench", "--phase", "channels", "--channel-n", str(N), "--no-baseline"]
    done = subprocess.run(
        [SENDMESH, *args, "--timeout", "60", "--json", "--amqp-url", amqp_url],
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def rows(figures: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["channel"], c["mode"]): c for c in figures["channels"]}


def test_every_channel_sends_everything_it_was_given_with_the_dev_providers(
    figures: dict[str, Any],
):
    by = rows(figures)
    for channel in ("email", "sms", "webpush", "inapp"):
        row = by[(channel, "dev")]
        assert (row["submitted"], row["sent"], row["undecided"]) == (N, N, 0), row
        assert row["not_sent"] == {}
        assert row["sends_per_s"] > 0
        assert 0 < row["latencies"]["p50_ms"] <= row["latencies"]["p99_ms"]


def test_email_and_sms_reach_their_local_peers_through_the_real_providers(
    figures: dict[str, Any],
):
    by = rows(figures)
    for channel, provider in (("email", "smtp"), ("sms", "twilio")):
        row = by[(channel, "peers")]
        assert row["provider"] == provider
        assert (row["submitted"], row["sent"], row["undecided"]) == (N, N, 0), row
        # The peer itself counted them: the SENT events are not the only witness.
        assert row["peer_received"] == N
        assert row["latencies"]["p99_ms"] > 0


def test_in_app_is_reported_once_since_it_has_no_external_provider(figures: dict[str, Any]):
    assert [c["mode"] for c in figures["channels"] if c["channel"] == "inapp"] == ["dev"]


def test_web_push_through_the_vapid_provider_reaches_the_decrypting_peer(
    figures: dict[str, Any],
):
    row = rows(figures)[("webpush", "peers")]
    assert row["provider"] == "vapid"
    assert (row["submitted"], row["sent"], row["undecided"]) == (N, N, 0), row
    # The peer decrypted and verified every one (201).
    assert row["peer_received"] == N
