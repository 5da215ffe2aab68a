from __future__ import annotations

from services.channels.outcomes import action_for
from services.channels.provider import permanent, sent, transient


def test_a_sent_result_is_sent_whatever_the_attempt():
    assert action_for(sent("d"), attempts=8, max_attempts=8) == "sent"


def test_a_permanent_failure_fails_on_the_first_attempt():
    assert action_for(permanent("d", "provider_error"), attempts=1, max_attempts=8) == "failed"


def test_a_transient_failure_is_retried_before_the_last_attempt():
    assert action_for(transient("d", "provider_error"), attempts=2, max_attempts=3) == "retry"


def test_a_transient_failure_on_the_last_attempt_is_dead():
    assert action_for(transient("d", "provider_error"), attempts=3, max_attempts=3) == "dead"
