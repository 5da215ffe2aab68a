"""Properties of how delivery and intent states evolve as events arrive in any order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2

from services.intake.lifecycle import FINAL, intent_state, supersedes

S = intent_pb2.DeliveryState
I = intake_pb2.IntentState  # noqa: E741

ALL_STATES = [v.number for v in intent_pb2.DeliveryState.DESCRIPTOR.values]
OPEN_STATES = [s for s in ALL_STATES if s not in FINAL]
FINAL_STATES = sorted(FINAL)
EPOCH = datetime(2030, 1, 1, tzinfo=UTC)

states = st.sampled_from(ALL_STATES)
open_states = st.sampled_from(OPEN_STATES)
final_states = st.sampled_from(FINAL_STATES)
instants = st.integers(min_value=0, max_value=10**9).map(lambda s: EPOCH + timedelta(seconds=s))


def fold(events: list[tuple[int, datetime]]) -> tuple[int, datetime]:
    """The current decision after `events` arrive in this order, as intake folds them."""
    current = events[0]
    for new in events[1:]:
        if supersedes(new[0], new[1], current[0], current[1]):
            current = new
    return current


def test_the_final_states_are_exactly_those_after_which_nothing_happens():
    assert {s for s in ALL_STATES if s in FINAL} == {
        S.DELIVERY_STATE_SUPPRESSED,
        S.DELIVERY_STATE_CAPPED,
        S.DELIVERY_STATE_SENT,
        S.DELIVERY_STATE_FAILED,
        S.DELIVERY_STATE_DEAD,
        S.DELIVERY_STATE_CANCELLED,
        S.DELIVERY_STATE_SKIPPED,
        S.DELIVERY_STATE_EXPIRED,
    }
    assert set(OPEN_STATES) == {
        S.DELIVERY_STATE_UNSPECIFIED,
        S.DELIVERY_STATE_PENDING,
        S.DELIVERY_STATE_SCHEDULED,
    }


@given(new=open_states, cur=final_states, new_at=instants, cur_at=instants)
def test_a_final_state_is_never_replaced_by_an_open_one_however_late(new, cur, new_at, cur_at):
    assert not supersedes(new, new_at, cur, cur_at)


@given(new=final_states, cur=open_states, new_at=instants, cur_at=instants)
def test_a_final_state_replaces_an_open_one_however_early(new, cur, new_at, cur_at):
    assert supersedes(new, new_at, cur, cur_at)


@given(
    pair=st.one_of(st.tuples(open_states, open_states), st.tuples(final_states, final_states)),
    new_at=instants,
    cur_at=instants,
)
def test_between_two_open_or_two_final_states_the_later_wins(pair, new_at, cur_at):
    new, cur = pair
    assert supersedes(new, new_at, cur, cur_at) == (new_at >= cur_at)


@given(state=states, at=instants)
def test_a_repeated_decision_replaces_itself(state, at):
    # Idempotent replays of one event leave the delivery where it was.
    assert supersedes(state, at, state, at)


@given(st.lists(st.tuples(states, instants), min_size=1, max_size=30))
def test_once_a_delivery_is_final_it_stays_final_whatever_arrives_next(events):
    current = events[0]
    for new in events[1:]:
        was_final = current[0] in FINAL
        if supersedes(new[0], new[1], current[0], current[1]):
            current = new
        assert current[0] in FINAL or not was_final


@given(
    st.lists(
        st.tuples(states, st.integers(min_value=0, max_value=10**6)),
        min_size=1,
        max_size=20,
        unique_by=lambda e: e[1],
    ),
    st.randoms(use_true_random=False),
)
def test_the_outcome_does_not_depend_on_the_order_events_arrive_in(events, rnd):
    timed = [(state, EPOCH + timedelta(seconds=s)) for state, s in events]
    shuffled = timed[:]
    rnd.shuffle(shuffled)
    finals = [e for e in timed if e[0] in FINAL]
    expected = max(finals or timed, key=lambda e: e[1])
    assert fold(timed) == fold(shuffled) == expected


# -- the intent's state ---------------------------------------------------------


@given(st.lists(states, max_size=20))
def test_a_cancelled_intent_is_cancelled_whatever_its_deliveries_say(delivery_states):
    assert intent_state(True, delivery_states) == I.INTENT_STATE_CANCELLED


def test_an_intent_without_deliveries_yet_is_accepted():
    assert intent_state(False, []) == I.INTENT_STATE_ACCEPTED
    assert intent_state(False, iter(())) == I.INTENT_STATE_ACCEPTED


@given(st.lists(final_states, min_size=1, max_size=20))
def test_an_intent_whose_deliveries_are_all_final_is_completed(delivery_states):
    assert intent_state(False, delivery_states) == I.INTENT_STATE_COMPLETED


@given(st.lists(final_states, max_size=20), open_states, st.lists(final_states, max_size=20))
def test_one_open_delivery_keeps_the_intent_processing(before, open_state, after):
    assert intent_state(False, [*before, open_state, *after]) == I.INTENT_STATE_PROCESSING


@given(st.lists(states, min_size=1, max_size=20))
def test_the_intent_state_follows_from_its_deliveries_alone(delivery_states):
    expected = (
        I.INTENT_STATE_COMPLETED
        if all(s in FINAL for s in delivery_states)
        else I.INTENT_STATE_PROCESSING
    )
    assert intent_state(False, iter(delivery_states)) == expected
