from __future__ import annotations

import pytest

from services.email.providers.smtp import reply_result
from shared import reasons


@pytest.mark.parametrize(
    ("code", "stage", "outcome", "reason"),
    [
        (451, "rcpt", "transient", reasons.PROVIDER_UNAVAILABLE),
        (421, "data", "transient", reasons.PROVIDER_UNAVAILABLE),
        (550, "rcpt", "permanent", reasons.INVALID_CONTACT),
        (551, "rcpt", "permanent", reasons.INVALID_CONTACT),
        (553, "rcpt", "permanent", reasons.INVALID_CONTACT),
        (552, "rcpt", "permanent", reasons.PROVIDER_REJECTED),
        (550, "data", "permanent", reasons.PROVIDER_REJECTED),
        (554, "mail", "permanent", reasons.PROVIDER_REJECTED),
        (-1, "smtp", "transient", reasons.PROVIDER_UNAVAILABLE),
    ],
)
def test_a_reply_code_decides_the_outcome(code: int, stage: str, outcome: str, reason: str):
    result = reply_result("d-1", code, "no", stage)

    assert (result.outcome, result.reason) == (outcome, reason)


def test_the_detail_keeps_the_status_but_never_the_reply_text_that_quotes_the_address():
    result = reply_result("d-1", 550, "5.1.1 <ann@example.com>: user unknown", "rcpt")

    assert result.detail == "smtp 550 5.1.1 at rcpt"
