"""A database made by an earlier version is brought up to the models at start-up.

Each test makes the older table shape itself, proves the column is really
missing, then starts (or runs the start-up step of) a service on it, on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sendmesh.profile.v1 import profile_pb2, profile_pb2_grpc
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel
from structlog.testing import capture_logs

from services.profile.__main__ import create_runtime as create_profile_runtime
from services.profile.settings import ProfileSettings
from services.profile.store import ProfileRow
from shared import db
from shared.runtime import Context, Parts, ServiceRuntime
from shared.settings import ServiceSettings
from tests.conftest import Tenants, running
from tests.integration.grpc_helpers import channel_to


class Gadget(SQLModel, table=True):
    """A table that gained three columns since its first release."""

    __tablename__ = "upgrade_gadgets"
    # One index over two of the new columns: it can only be made once both exist.
    __table_args__ = (Index("ix_upgrade_gadgets_colour_stock", "colour", "stock"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str
    # Nullable: old rows read as NULL. Indexed: the index comes with it.
    colour: str | None = Field(default=None, sa_column=Column(String, nullable=True, index=True))
    # NOT NULL, but the database fills old rows in.
    stock: int = Field(sa_column=Column(Integer, nullable=False, server_default=text("7")))


class Widget(SQLModel, table=True):
    """A table that gained a column no old row can have a value for."""

    __tablename__ = "upgrade_widgets"
    id: int | None = Field(default=None, primary_key=True)
    name: str
    note: str | None = None
    # NOT NULL, and only a Python-side default: old rows would have none.
    weight: int = 0


def older_shape(model: type[SQLModel], *dropped: str) -> Table:
    """The model's table as an earlier version made it: without `dropped`."""
    table = db.table_of(model)
    kept = [c._copy() for c in table.columns if c.name not in dropped]
    return Table(table.name, MetaData(), *kept)


async def create_older(engine: AsyncEngine, table: Table, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(table.create)
        if rows:
            await conn.execute(table.insert(), rows)


async def columns_of(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_columns(table))
    return {c["name"] for c in found}


async def indexed_columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
    return {name for index in found for name in index["column_names"] if name}


async def index_names(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.run_sync(lambda c: inspect(c).get_indexes(table))
    return {str(index["name"]) for index in found}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    made = db.create_engine(database_url)
    yield made
    await db.dispose(made)


async def test_profiles_from_before_quiet_hours_gain_the_column_at_start_and_the_service_works(
    engine: AsyncEngine,
    database_url: str,
    make_settings: Callable[..., Any],
    tenants: Tenants,
):
    before = {
        "tenant_id": "acme",
        "user_id": "old-user",
        "attributes": {"member": True},
        "locale": "en",
        "timezone": "Europe/Vienna",
        "email": "",
        "phone": "",
        "webpush": [],
        "updated_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
    await create_older(engine, older_shape(ProfileRow, "quiet_hours"), [before])
    assert "quiet_hours" not in await columns_of(engine, "profiles")

    settings = make_settings(ProfileSettings, database_url=database_url)
    async with running(create_profile_runtime(settings)) as service:
        assert "quiet_hours" in await columns_of(engine, "profiles")
        async with channel_to(service.port) as channel:
            profiles = profile_pb2_grpc.ProfilesStub(channel)
            meta = tenants.metadata()
            old = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id="old-user"), metadata=meta
            )
            assert old.profile.attributes["member"] is True
            assert not old.profile.HasField("quiet_hours")

            new = profile_pb2.Profile(user_id="new-user", timezone="Europe/Vienna")
            new.quiet_hours.start_minute, new.quiet_hours.end_minute = 21 * 60, 8 * 60
            await profiles.UpsertProfile(
                profile_pb2.UpsertProfileRequest(profile=new), metadata=meta
            )
            got = await profiles.GetProfile(
                profile_pb2.GetProfileRequest(user_id="new-user"), metadata=meta
            )
            assert (got.profile.quiet_hours.start_minute, got.profile.quiet_hours.end_minute) == (
                21 * 60,
                8 * 60,
            )


async def test_nullable_and_server_defaulted_columns_are_added_with_their_index_and_old_rows_kept(
    engine: AsyncEngine,
):
    await create_older(
        engine, older_shape(Gadget, "colour", "stock"), [{"id": 1, "name": "sprocket"}]
    )
    assert await columns_of(engine, "upgrade_gadgets") == {"id", "name"}

    added = await db.add_missing_columns(engine, [Gadget])

    assert sorted(added) == ["upgrade_gadgets.colour", "upgrade_gadgets.stock"]
    assert await columns_of(engine, "upgrade_gadgets") == {"id", "name", "colour", "stock"}
    assert "colour" in await indexed_columns(engine, "upgrade_gadgets")
    assert "ix_upgrade_gadgets_colour_stock" in await index_names(engine, "upgrade_gadgets")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, name, colour, stock FROM upgrade_gadgets"))
        ).all()
    assert [tuple(r) for r in rows] == [(1, "sprocket", None, 7)]
    # Once is enough: a second start finds nothing to add.
    assert await db.add_missing_columns(engine, [Gadget]) == []


async def test_a_missing_not_null_column_without_a_default_fails_start_up_naming_table_and_column(
    engine: AsyncEngine, database_url: str, make_settings: Callable[..., Any]
):
    await create_older(engine, older_shape(Widget, "note", "weight"), [{"id": 1, "name": "w"}])
    assert await columns_of(engine, "upgrade_widgets") == {"id", "name"}

    async def build(_ctx: Context) -> Parts:
        return Parts()

    runtime = ServiceRuntime(
        make_settings(ServiceSettings, database_url=database_url), build, tables=[Widget]
    )
    with pytest.raises(db.SchemaError, match=r"upgrade_widgets\.weight"):
        await runtime.start()
    await runtime.stop()

    with capture_logs() as logs, pytest.raises(db.SchemaError):
        await db.create_tables(engine, [Widget])
    errors = [e for e in logs if e["log_level"] == "error"]
    assert [(e["event"], e["table"], e["column"]) for e in errors] == [
        ("schema_column_cannot_be_added", "upgrade_widgets", "weight")
    ]
    # All or nothing: the nullable column was not added on the way either.
    assert await columns_of(engine, "upgrade_widgets") == {"id", "name"}
