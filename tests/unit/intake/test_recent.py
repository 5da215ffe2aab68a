from __future__ import annotations

from services.intake.recent import RecentDecisions


def test_it_knows_each_stored_decision_and_no_other():
    recent = RecentDecisions()
    recent.remember([("d1", "profile", 1), ("d1", "inapp", 5), ("d2", "eligibility", 2)])
    assert recent.stored("d1", "profile", 1)
    assert recent.stored("d1", "inapp", 5)
    assert recent.stored("d2", "eligibility", 2)
    assert not recent.stored("d1", "eligibility", 2)
    assert not recent.stored("d1", "profile", 5)
    assert not recent.stored("d3", "profile", 1)


def test_it_forgets_the_deliveries_least_recently_written_beyond_its_capacity():
    recent = RecentDecisions(capacity=2)
    recent.remember([("d1", "profile", 1)])
    recent.remember([("d2", "profile", 1)])
    recent.remember([("d1", "inapp", 5)])  # d1 is written again: d2 is now the oldest
    recent.remember([("d3", "profile", 1)])
    assert len(recent) == 2
    assert not recent.stored("d2", "profile", 1)
    assert recent.stored("d1", "profile", 1) and recent.stored("d1", "inapp", 5)
    assert recent.stored("d3", "profile", 1)
