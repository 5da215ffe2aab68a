"""`sendmesh profiles import` against a running profile service."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc
from typer.testing import CliRunner, Result

from cli.main import app
from cli.mesh import free_port_block
from services.profile.__main__ import create_runtime
from services.profile.settings import ProfileSettings
from shared.runtime import ServiceRuntime
from tests.conftest import Tenants, running
from tests.integration.grpc_helpers import channel_to

runner = CliRunner()


@pytest.fixture
async def profile_service(make_settings: Callable[..., Any]) -> AsyncIterator[ServiceRuntime]:
    async with running(create_runtime(make_settings(ProfileSettings))) as runtime:
        yield runtime


def good(user: str, **extra: Any) -> str:
    line = {
        "user_id": user,
        "attributes": {"member": False, "score": 3},
        "locale": "de-AT",
        "timezone": "Europe/Vienna",
        "contacts": {
            "email": f"{user}@example.com",
            "phone": "+4366412345678",
            "webpush": [{"endpoint": "https://push.example/1", "p256dh": "K", "auth": "A"}],
        },
        **extra,
    }
    return json.dumps(line)


async def import_file(path: Path, runtime: ServiceRuntime, tenants: Tenants, *flags: str) -> Result:
    args = ["profiles", "import", str(path), "--profile", f"127.0.0.1:{runtime.port}"]
    args += ["--api-key", tenants.keys["acme"], *flags]
    # The command runs its own event loop; the service runs on this one.
    return await asyncio.to_thread(runner.invoke, app, args)


async def test_good_lines_are_imported_and_each_bad_line_is_reported_by_number_and_skipped(
    profile_service: ServiceRuntime, tenants: Tenants, tmp_path: Path
):
    consent = {"channel": "email", "granted": True, "source": "signup_form"}
    lines = [
        good("u1", consents=[consent, {"channel": "sms", "granted": False}], topics=["news"]),
        "",
        "{not json",
        good("u2", topics=["news", "deals"]),
        json.dumps({"user_id": "u3", "contacts": {"email": "not-an-address"}}),
        json.dumps({"user_id": "u4", "favourite_colour": "red"}),
        good("u5", consents=[{"channel": "pigeon", "granted": True}]),
        good("u6", topics=["Big News"]),
        good("u7"),
    ]
    path = tmp_path / "profiles.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = await import_file(path, profile_service, tenants, "--concurrency", "3")

    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 3, rejected 5"
    found = re.finditer(r"^error: line (\d+): (.*)$", result.stderr, re.MULTILINE)
    reported = {int(m[1]): m[2] for m in found}
    assert sorted(reported) == [3, 5, 6, 7, 8]
    assert "not JSON" in reported[3]
    assert "contacts.email: not an email address" in reported[5]
    assert "unknown field 'favourite_colour'" in reported[6]
    assert "consents[0].channel" in reported[7]
    assert "profile saved, but topics[0]" in reported[8]

    async with channel_to(profile_service.port) as channel:
        stub = profile_pb2_grpc.ProfilesStub(channel)
        meta = tenants.metadata("acme")
        u1 = (
            await stub.GetProfile(profile_pb2.GetProfileRequest(user_id="u1"), metadata=meta)
        ).profile
        assert u1.contacts.webpush[0].endpoint == "https://push.example/1"
        assert u1.attributes["score"] == 3
        assert [(c.channel, c.granted, c.source) for c in u1.consents] == [
            (intent_pb2.CHANNEL_EMAIL, True, "signup_form"),
            (intent_pb2.CHANNEL_SMS, False, "import"),
        ]
        for user in ("u2", "u7"):
            await stub.GetProfile(profile_pb2.GetProfileRequest(user_id=user), metadata=meta)
        for user in ("u3", "u4", "u5"):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetProfile(profile_pb2.GetProfileRequest(user_id=user), metadata=meta)
        news = intent_pb2.Audience(topic="news")
        count = await stub.CountAudience(
            profile_pb2.CountAudienceRequest(audience=news), metadata=meta
        )
        assert count.count == 2


async def test_a_clean_file_imports_everything_and_says_so_in_json(
    profile_service: ServiceRuntime, tenants: Tenants, tmp_path: Path
):
    path = tmp_path / "profiles.jsonl"
    path.write_text("\n".join(good(f"user-{n}") for n in range(40)) + "\n")
    result = await import_file(path, profile_service, tenants, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"imported": 40, "rejected": 0, "errors": []}


async def test_an_import_to_a_service_that_is_not_there_stops_in_one_line(tmp_path: Path):
    path = tmp_path / "profiles.jsonl"
    path.write_text(good("u1") + "\n" + good("u2") + "\n")
    address = f"127.0.0.1:{free_port_block(1)}"
    args = ["profiles", "import", str(path), "--profile", address, "--api-key", "smk_x"]
    result = await asyncio.to_thread(runner.invoke, app, args)
    assert result.exit_code == 1
    assert result.stdout.strip() == "imported 0, rejected 0"
    assert result.stderr.strip().startswith("error: stopped: UNAVAILABLE")
