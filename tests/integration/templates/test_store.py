"""The template store on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.templates.store import TABLES, TemplateStore
from tests.unit.templates.support import template

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def cart(text: str = "Hi", template_id: str = "cart", category: str = ""):
    return template({"en": {"sms": {"text": text}}}, template_id=template_id, category=category)


@pytest.fixture
async def store(store_engine):
    return TemplateStore(await store_engine(TABLES))


async def test_every_put_is_a_new_version_and_zero_reads_the_latest(store):
    first = await store.put("acme", cart("one"), NOW)
    second = await store.put("acme", cart("two"), NOW)
    assert (first.version, second.version) == (1, 2)
    assert second.created_at.ToDatetime(tzinfo=UTC) == NOW
    latest = await store.get("acme", "cart")
    assert latest is not None and latest.variants[0].sms.text == "two"
    old = await store.get("acme", "cart", 1)
    assert old is not None and old.variants[0].sms.text == "one"
    assert await store.get("acme", "cart", 3) is None


async def test_tenants_do_not_see_each_others_templates(store):
    await store.put("acme", cart("acme's"), NOW)
    assert await store.get("globex", "cart") is None
    assert (await store.put("globex", cart("globex's"), NOW)).version == 1
    acme = await store.get("acme", "cart")
    assert acme is not None and acme.variants[0].sms.text == "acme's"


async def test_a_deleted_template_is_gone_and_a_new_put_continues_its_numbers(store):
    await store.put("acme", cart(), NOW)
    await store.put("acme", cart(), NOW)
    assert await store.delete("acme", "cart", NOW)
    assert not await store.delete("acme", "cart", NOW)
    assert await store.get("acme", "cart") is None
    assert await store.get("acme", "cart", 1) is None
    assert await store.list_versions("acme", "cart", None, 10) is None
    assert (await store.put("acme", cart("back"), NOW)).version == 3
    assert [t.version for t in await store.list_versions("acme", "cart", None, 10)] == [3, 2, 1]


async def test_many_references_resolve_at_once_telling_unknown_templates_from_unknown_versions(
    store,
):
    await store.put("acme", cart("one"), NOW)
    await store.put("acme", cart("two"), NOW)
    await store.put("acme", cart(template_id="welcome"), NOW)
    found = await store.resolve(
        "acme", [("cart", 0), ("cart", 1), ("cart", 9), ("welcome", 0), ("ghost", 0)]
    )
    assert found.existing == {"cart", "welcome"}
    assert {ref: t.version for ref, t in found.templates.items()} == {
        ("cart", 0): 2,
        ("cart", 1): 1,
        ("welcome", 0): 1,
    }


async def test_concurrent_puts_of_one_template_get_distinct_versions(store):
    stored = await asyncio.gather(*(store.put("acme", cart(str(i)), NOW) for i in range(8)))
    assert sorted(t.version for t in stored) == list(range(1, 9))
    listed = await store.list_versions("acme", "cart", None, 100)
    assert listed is not None
    assert {t.version: t.variants[0].sms.text for t in listed} == {
        t.version: t.variants[0].sms.text for t in stored
    }


async def test_listing_shows_the_latest_of_each_live_template_by_id_and_category(store):
    for template_id, category in (("b", "cart"), ("a", ""), ("c", "cart"), ("d", "cart")):
        await store.put("acme", cart(template_id=template_id, category=category), NOW)
    await store.put("acme", cart("newer", template_id="b", category="cart"), NOW)
    await store.delete("acme", "d", NOW)
    page = await store.list_latest("acme", "", "", 10)
    assert [(t.template_id, t.version) for t in page] == [("a", 1), ("b", 2), ("c", 1)]
    assert [t.template_id for t in await store.list_latest("acme", "cart", "", 10)] == ["b", "c"]
    assert [t.template_id for t in await store.list_latest("acme", "", "a", 1)] == ["b"]


async def test_versions_page_newest_first_below_a_version(store):
    for i in range(5):
        await store.put("acme", cart(str(i)), NOW)
    listed = await store.list_versions("acme", "cart", 4, 2)
    assert listed is not None and [t.version for t in listed] == [3, 2]
