"""The commands' own behaviour, without a mesh: argument errors, keys, exits."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from typer.testing import CliRunner

from cli.commands.bench import beside_intake
from cli.commands.keys import api_keys_line
from cli.commands.run import exit_lines
from cli.main import app
from cli.mesh import SERVICE_NAMES, free_port_block
from shared.auth import hash_api_key

runner = CliRunner()


def test_serving_an_unknown_service_lists_the_valid_ones():
    result = runner.invoke(app, ["serve", "mailer"])
    assert result.exit_code == 2
    assert "unknown service 'mailer'" in result.stderr
    assert "intake, profile, eligibility, frequency, email, sms, webpush, inapp" in result.stderr


def test_a_new_key_is_printed_with_the_setting_that_admits_it():
    result = runner.invoke(app, ["keys", "new", "--tenant", "acme"])
    assert result.exit_code == 0
    key, setting = result.stdout.strip().splitlines()
    assert setting == api_keys_line(hash_api_key(key), "acme")
    assert json.loads(setting.split("=", 1)[1].strip("'")) == {hash_api_key(key): "acme"}


def test_keys_hash_prints_the_sha256_services_expect():
    result = runner.invoke(app, ["keys", "hash", "smk_abc"])
    assert result.stdout.strip() == hash_api_key("smk_abc")


def test_send_without_any_key_says_where_to_get_one(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SENDMESH_API_KEY", raising=False)
    args = ["send", "--user", "u1", "--channel", "inapp", "--var-dir", str(tmp_path)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "no API key" in result.stderr


def test_send_to_a_mesh_that_is_not_there_fails_in_one_line():
    address = f"127.0.0.1:{free_port_block(1)}"
    args = ["send", "-u", "u1", "-c", "inapp", "--intake", address, "--api-key", "smk_x"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: UNAVAILABLE")
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unknown_channel_is_an_argument_error():
    result = runner.invoke(app, ["send", "-u", "u1", "-c", "pigeon", "--api-key", "smk_x"])
    assert result.exit_code == 2


def test_exit_report_says_how_each_service_ended():
    codes = {"intake": 0, "sms": -signal.SIGKILL, "email": 3}
    assert exit_lines(codes) == [
        "intake exited cleanly",
        "sms was killed (SIGKILL)",
        "email exited with code 3",
    ]


def test_bench_finds_profile_and_frequency_beside_a_running_meshs_intake():
    intake_port = 51051
    offset = SERVICE_NAMES.index("profile") - SERVICE_NAMES.index("intake")
    assert beside_intake(f"127.0.0.1:{intake_port}", "profile") == (
        f"127.0.0.1:{intake_port + offset}"
    )
    assert beside_intake(f"127.0.0.1:{intake_port}", "intake") == f"127.0.0.1:{intake_port}"
