from __future__ import annotations

import pytest

from services.intake.settings import IntakeSettings
from shared.settings import SettingsError, load_settings


def test_every_bad_variable_is_named_at_once(monkeypatch):
    monkeypatch.setenv("SENDMESH_GRPC_PORT", "not-a-port")
    monkeypatch.setenv("SENDMESH_BUS_NAMESPACE", "Has Spaces")
    monkeypatch.setenv("SENDMESH_LOG_LEVEL", "chatty")
    with pytest.raises(SettingsError) as err:
        load_settings(IntakeSettings)
    message = str(err.value)
    for key in ("SENDMESH_GRPC_PORT", "SENDMESH_BUS_NAMESPACE", "SENDMESH_LOG_LEVEL"):
        assert key in message


def test_secrets_never_show_in_repr(monkeypatch):
    monkeypatch.setenv("SENDMESH_AMQP_URL", "amqp://user:hunter2@broker:5672/")
    monkeypatch.setenv("SENDMESH_DATABASE_URL", "postgresql+asyncpg://app:s3cret@db/intake")
    settings = load_settings(IntakeSettings)
    assert "hunter2" not in repr(settings) and "s3cret" not in repr(settings)
    assert settings.resolved_database_url().endswith("@db/intake")


def test_the_embedded_default_is_sqlite_under_var():
    settings = IntakeSettings()
    assert settings.resolved_database_url() == "sqlite+aiosqlite:///var/intake.db"
