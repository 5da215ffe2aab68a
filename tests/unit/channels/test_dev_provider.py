from __future__ import annotations

import json
from pathlib import Path

from services.channels.provider import Contact, OutgoingMessage
from services.sms.providers.dev import DevSmsProvider


def _message(delivery_id: str) -> OutgoingMessage:
    return OutgoingMessage(
        tenant_id="acme",
        intent_id="i1",
        delivery_id=delivery_id,
        user_id="u1",
        channel="sms",
        category="otp",
        kind="transactional",
        content={"text": "Your code is 123456"},
        contact=Contact(phone="+43123456789"),
    )


def json_files(root: Path) -> list[Path]:
    return list(root.rglob("*.json"))


async def test_the_sms_dev_provider_writes_the_text_it_would_send(tmp_path: Path):
    [result] = await DevSmsProvider(tmp_path).send([_message("d-1")])

    written = json.loads((tmp_path / "outbox" / "sms" / "d-1.json").read_text())
    assert (written["to"], written["text"]) == ("+43123456789", "Your code is 123456")
    assert (result.outcome, result.provider_message_id) == ("sent", "d-1")


async def test_a_delivery_id_that_is_not_a_plain_name_is_refused_and_writes_nothing(
    tmp_path: Path,
):
    [result] = await DevSmsProvider(tmp_path / "var").send([_message("../escape")])

    assert result.outcome == "permanent"
    assert json_files(tmp_path) == []
