"""`sendmesh templates put` and `show` against a running intake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from cli.main import app
from shared.runtime import ServiceRuntime
from tests.conftest import Tenants

runner = CliRunner()

FILE = """
template_id: cart_reminder
category: cart_reminder
default_locale: en
variants:
  en:
    inapp: {title: "Your cart", body: "{{ data.items }} items wait"}
  de:
    inapp: {title: "Dein Warenkorb", body: "{{ data.items }} Artikel warten"}
"""


async def cli(intake: ServiceRuntime, tenants: Tenants, *args: str) -> Result:
    flags = ["--intake", f"127.0.0.1:{intake.port}", "--api-key", tenants.keys["acme"]]
    # The command runs its own event loop; the service runs on this one.
    return await asyncio.to_thread(runner.invoke, app, ["templates", *args, *flags])


async def test_put_stores_a_yaml_file_as_the_next_version_and_show_prints_it(
    intake: ServiceRuntime, tenants: Tenants, tmp_path: Path
):
    path = tmp_path / "cart.yaml"
    path.write_text(FILE)
    first = await cli(intake, tenants, "put", str(path))
    assert (first.exit_code, first.stdout.strip()) == (0, "template cart_reminder version 1 stored")
    path.write_text(FILE.replace("Your cart", "Still in your cart"))
    second = await cli(intake, tenants, "put", str(path))
    assert second.stdout.strip() == "template cart_reminder version 2 stored"

    shown = await cli(intake, tenants, "show", "cart_reminder", "--version", "1", "--json")
    assert shown.exit_code == 0
    view = json.loads(shown.stdout)
    assert (view["version"], view["variants"][0]["inapp"]["title"]) == (1, "Your cart")
    assert view["variants"][1]["locale"] == "de"

    latest = await cli(intake, tenants, "show", "cart_reminder")
    assert "version: 2" in latest.stdout
    assert "title: Still in your cart" in latest.stdout


async def test_put_of_a_template_with_a_syntax_error_fails_naming_the_field(
    intake: ServiceRuntime, tenants: Tenants, tmp_path: Path
):
    path = tmp_path / "broken.yaml"
    path.write_text(FILE.replace("{{ data.items }} Artikel", "{{ data.items } Artikel"))
    result = await cli(intake, tenants, "put", str(path))
    assert result.exit_code == 1
    assert "INVALID_ARGUMENT: template.variants[1].inapp.body: line 1: unexpected '}'" in (
        result.stderr
    )


async def test_show_of_an_unknown_template_fails_with_not_found(
    intake: ServiceRuntime, tenants: Tenants
):
    result = await cli(intake, tenants, "show", "ghost")
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.stderr
