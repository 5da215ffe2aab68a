from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.inapp.states import TRANSITIONS, Mark, Target, up_to_now

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_every_mark_has_one_transition_and_only_read_implies_seen():
    assert set(TRANSITIONS) == set(Mark)
    assert [m for m, t in TRANSITIONS.items() if t.implies_seen] == [Mark.READ]


def test_marks_and_their_inverses_touch_the_same_column_in_opposite_directions():
    for mark, inverse in ((Mark.READ, Mark.UNREAD), (Mark.ARCHIVED, Mark.UNARCHIVED)):
        assert TRANSITIONS[mark].column == TRANSITIONS[inverse].column
        assert (TRANSITIONS[mark].sets, TRANSITIONS[inverse].sets) == (True, False)


def test_an_all_messages_cut_off_is_never_later_than_now():
    earlier = NOW - timedelta(minutes=5)
    assert up_to_now(None, NOW) == NOW
    assert up_to_now(earlier, NOW) == earlier
    assert up_to_now(NOW + timedelta(days=1), NOW) == NOW


def test_a_target_is_either_named_messages_or_the_feed_up_to_a_time():
    assert not Target.named(("m1",)).is_all
    assert Target.feed_up_to(NOW).is_all
