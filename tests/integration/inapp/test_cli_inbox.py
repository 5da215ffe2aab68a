"""`sendmesh inbox` against a running inapp service: states, counts and actions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner, Result

from cli.main import app
from shared.runtime import ServiceRuntime
from tests.conftest import Tenants
from tests.integration.inapp.support import seed

runner = CliRunner()


async def _inbox(inapp: ServiceRuntime, tenants: Tenants, *args: str) -> Result:
    address = ["--inapp", f"127.0.0.1:{inapp.port}", "--api-key", tenants.keys["acme"]]
    # The CLI's calls are blocking; the service answers on this test's event loop.
    return await asyncio.to_thread(runner.invoke, app, ["inbox", "u1", *args, *address])


async def _view(inapp: ServiceRuntime, tenants: Tenants, *args: str) -> dict[str, Any]:
    result = await _inbox(inapp, tenants, *args, "--json")
    assert result.exit_code == 0, result.output
    view: dict[str, Any] = json.loads(result.stdout)
    return view


async def test_the_inbox_table_shows_ids_states_and_counts(inapp, tenants: Tenants):
    m1, _m2 = await seed(inapp, 2)
    await _view(inapp, tenants, "--read", m1)

    result = await _inbox(inapp, tenants)

    assert result.exit_code == 0, result.output
    assert "inbox of u1: 1 unread, 1 unseen" in result.stdout
    line = next(line for line in result.stdout.splitlines() if m1 in line)
    assert "read" in line and "message 1" in line


async def test_read_then_archive_then_read_all_change_the_states_the_json_shows(
    inapp, tenants: Tenants
):
    m1, m2, m3 = await seed(inapp, 3)

    read = await _view(inapp, tenants, "--read", m1, m2)
    archived = await _view(inapp, tenants, "--archive", m1)
    shelf = await _view(inapp, tenants, "--status", "archived")
    read_all = await _view(inapp, tenants, "--read-all")

    assert (read["updated"], read["unread_count"], read["unseen_count"]) == (2, 1, 1)
    assert {m["message_id"]: m["state"] for m in read["messages"]} == {
        m1: "read",
        m2: "read",
        m3: "new",
    }
    assert archived["updated"] == 1
    assert [m["message_id"] for m in archived["messages"]] == [m3, m2]
    assert [(m["message_id"], m["state"]) for m in shelf["messages"]] == [(m1, "read, archived")]
    assert shelf["messages"][0]["archived_at"]
    assert (read_all["updated"], read_all["unread_count"], read_all["unseen_count"]) == (1, 0, 0)


async def test_an_action_without_ids_or_ids_without_an_action_or_two_actions_are_usage_errors(
    inapp, tenants: Tenants
):
    no_ids = await _inbox(inapp, tenants, "--archive")
    no_action = await _inbox(inapp, tenants, "m1")
    two = await _inbox(inapp, tenants, "--read", "--archive", "m1")

    assert [r.exit_code for r in (no_ids, no_action, two)] == [2, 2, 2]
    assert "--archive needs the ids" in no_ids.stderr
    assert "message ids are for" in no_action.stderr
    assert "one action at a time" in two.stderr


async def test_a_bad_message_id_comes_back_as_one_line_naming_the_field(inapp, tenants: Tenants):
    result = await _inbox(inapp, tenants, "--read", "x" * 65)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: INVALID_ARGUMENT: message_ids[0]:")
