from __future__ import annotations

import pytest

from services.scheduler.settings import SchedulerSettings
from shared.settings import SettingsError, load_settings


def test_the_scheduler_has_its_own_ports_and_a_quarter_second_poll(monkeypatch):
    for key in ("SENDMESH_GRPC_PORT", "SENDMESH_METRICS_PORT", "SENDMESH_SERVICE"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings(SchedulerSettings)
    assert (s.service, s.grpc_port, s.metrics_port) == ("scheduler", 50059, 9109)
    assert (s.dispatch_poll_s, s.dispatch_batch) == (0.25, 500)


def test_bad_dispatch_settings_stop_the_start_naming_each_key(monkeypatch):
    monkeypatch.setenv("SENDMESH_DISPATCH_POLL_S", "0")
    monkeypatch.setenv("SENDMESH_DISPATCH_BATCH", "0")
    with pytest.raises(SettingsError) as stopped:
        load_settings(SchedulerSettings)
    assert "SENDMESH_DISPATCH_POLL_S" in str(stopped.value)
    assert "SENDMESH_DISPATCH_BATCH" in str(stopped.value)
