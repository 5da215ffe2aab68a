"""The launcher's failure paths, with a stand-in interpreter instead of the services.

The broker is real (the launcher checks it first); the children are a small
script, so a failing or never-ready service can be had on demand.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cli.launcher import Launcher, MeshError
from cli.mesh import SERVICE_NAMES, MeshConfig, free_port_block

# Called as `<script> -m services.<name>`: sms fails at once, the others never
# become ready and exit cleanly on SIGTERM.
STAND_IN = """#!/usr/bin/env bash
if [[ $2 == services.sms ]]; then echo "sms: cannot reach its provider" >&2; exit 3; fi
trap 'exit 0' TERM
while true; do sleep 0.05; done
"""


def launcher_for(tmp_path: Path, amqp_url: str, timeout_s: float) -> Launcher:
    script = tmp_path / "python"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    cfg = MeshConfig(
        var_dir=tmp_path / "var",
        namespace="l" + uuid.uuid4().hex[:8],
        base_port=free_port_block(),
        metrics_base_port=free_port_block(),
        amqp_url=amqp_url,
    )
    return Launcher(
        cfg, {}, log_dir=tmp_path / "logs", start_timeout_s=timeout_s, grace_s=5, python=str(script)
    )


def test_a_service_that_dies_at_start_is_named_with_its_log_and_the_rest_are_stopped(
    tmp_path: Path, amqp_url: str
):
    launcher = launcher_for(tmp_path, amqp_url, timeout_s=30)
    with pytest.raises(MeshError) as failed:
        launcher.start()
    message = str(failed.value)
    assert message.startswith("sms exited with code 3 during start-up")
    assert "sms: cannot reach its provider" in message
    codes = {c.name: c.exit_code() for c in launcher.children}
    assert codes == {name: (3 if name == "sms" else 0) for name in SERVICE_NAMES}


def test_services_that_never_serve_are_named_after_the_start_timeout(tmp_path: Path, amqp_url: str):
    script_dir = tmp_path / "never"
    script_dir.mkdir()
    launcher = launcher_for(script_dir, amqp_url, timeout_s=1)
    # Without sms failing first: every stand-in just waits.
    (script_dir / "python").write_text(STAND_IN.replace("services.sms", "services.none"))
    with pytest.raises(MeshError, match=r"not SERVING after 1 s: intake, profile, .*inapp"):
        launcher.start()
    assert all(c.exit_code() == 0 for c in launcher.children)
