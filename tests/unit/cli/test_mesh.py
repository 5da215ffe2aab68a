from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from cli.mesh import (
    DEFAULT_BASE_PORT,
    DEFAULT_METRICS_BASE_PORT,
    SERVICE_NAMES,
    MeshConfig,
    busy_ports,
    example_inbox_line,
    example_send_line,
    free_port_block,
    merged_api_keys,
    port_is_free,
    service_command,
    service_env,
)


def test_ports_follow_the_service_table_order():
    cfg = MeshConfig(base_port=50051, metrics_base_port=9101)
    assert [cfg.grpc_port(n) for n in SERVICE_NAMES] == list(range(50051, 50060))
    assert [cfg.metrics_port(n) for n in SERVICE_NAMES] == list(range(9101, 9110))
    assert cfg.address("intake") == "127.0.0.1:50051"
    assert cfg.address("inapp") == "127.0.0.1:50058"


def test_the_service_map_is_the_documented_one():
    assert SERVICE_NAMES == (
        "intake",
        "profile",
        "eligibility",
        "frequency",
        "email",
        "sms",
        "webpush",
        "inapp",
        "scheduler",
    )
    assert (DEFAULT_BASE_PORT, DEFAULT_METRICS_BASE_PORT) == (50051, 9101)


def test_env_sets_every_mesh_setting_over_the_inherited_ones(tmp_path: Path):
    cfg = MeshConfig(
        var_dir=tmp_path / "var", namespace="ns1", base_port=41000, metrics_base_port=42000
    )
    inherited = {"PATH": "/bin", "SENDMESH_GRPC_PORT": "1", "SENDMESH_PREFETCH": "64"}
    env = service_env(cfg, "frequency", {"abc": "dev"}, inherited, "k" * 43)
    assert env["SENDMESH_INTERNAL_KEY"] == "k" * 43
    assert env["SENDMESH_PROFILE_ADDRESS"] == "127.0.0.1:41001"
    assert env["SENDMESH_GRPC_PORT"] == "41003"
    assert env["SENDMESH_METRICS_PORT"] == "42003"
    assert env["SENDMESH_BUS_NAMESPACE"] == "ns1"
    assert env["SENDMESH_GRPC_HOST"] == "127.0.0.1"
    assert json.loads(env["SENDMESH_API_KEYS"]) == {"abc": "dev"}
    assert env["SENDMESH_LOG_FORMAT"] == "console"
    assert env["SENDMESH_AMQP_URL"].startswith("amqp://")


def test_env_passes_other_variables_through_untouched(tmp_path: Path):
    env = service_env(
        MeshConfig(var_dir=tmp_path), "intake", {}, {"PATH": "/bin", "SENDMESH_PREFETCH": "64"}
    )
    assert env["PATH"] == "/bin"
    assert env["SENDMESH_PREFETCH"] == "64"


def test_env_var_dir_is_absolute_so_the_childs_cwd_does_not_matter():
    env = service_env(MeshConfig(var_dir=Path("var")), "intake", {}, {})
    assert Path(env["SENDMESH_VAR_DIR"]).is_absolute()
    assert Path(env["SENDMESH_VAR_DIR"]).name == "var"


def test_service_command_runs_the_services_module():
    assert service_command("/py", "sms") == ["/py", "-m", "services.sms"]


def test_dev_key_is_merged_with_keys_already_configured():
    inherited = {"SENDMESH_API_KEYS": json.dumps({"h1": "acme"})}
    assert merged_api_keys("h2", inherited) == {"h1": "acme", "h2": "dev"}
    assert merged_api_keys("h2", {}) == {"h2": "dev"}


def test_a_free_port_block_is_free_and_away_from_the_defaults():
    base = free_port_block(8)
    assert all(port_is_free(base + i) for i in range(8))
    assert not (50051 <= base <= 50058 + 8)
    assert not (9101 <= base <= 9108 + 8)


def test_busy_ports_names_what_holds_the_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg = MeshConfig(base_port=port - 2, metrics_base_port=free_port_block(8))
        assert ("eligibility gRPC", port) in busy_ports(cfg)


def test_example_lines_carry_flags_only_when_not_the_defaults():
    assert example_send_line(MeshConfig()) == (
        "sendmesh send --user u1 --channel inapp --title Hi --body 'Your cart misses you'"
    )
    assert example_inbox_line(MeshConfig()) == "sendmesh inbox u1"
    cfg = MeshConfig(var_dir=Path("/tmp/v"), base_port=41000)
    assert example_send_line(cfg).endswith("--intake 127.0.0.1:41000 --var-dir /tmp/v")
    assert example_inbox_line(cfg) == "sendmesh inbox u1 --inapp 127.0.0.1:41007 --var-dir /tmp/v"


def test_a_port_whose_last_connection_lingers_in_time_wait_is_free():
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server closes first: its side enters TIME_WAIT
        client.close()
    # The fault happened: a plain bind, without SO_REUSEADDR, is refused.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_is_free(port)
