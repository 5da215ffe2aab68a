"""Deciding whether a profile is in a segment: attributes, events, and the
three-valued answer given before events are read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.profile.segments import evaluate, parse
from tests.unit.profile.test_segments import BRIEF, NOW, event, exprs


@pytest.mark.parametrize(
    ("text", "attributes", "expected"),
    [
        ("member = false", {"member": False}, True),
        ("member = false", {"member": True}, False),
        ("member = false", {}, False),  # missing passes no comparison
        ("member != true", {}, False),
        ("member != true", {"member": False}, True),
        ("member = 0", {"member": False}, False),  # a bool is not a number
        ("score > 0.5", {"score": 0.75}, True),
        ("score > 0.5", {"score": "0.75"}, False),  # nor is a string
        ("score != 1", {"score": "1"}, True),
        ("score <= 3", {"score": 3.0}, True),
        ('name < "b"', {"name": "alice"}, True),
        ("flag < true", {"flag": False}, False),  # bools have no order
        ("tags = 1", {"tags": ["a"]}, False),
        ("address.city EXISTS", {"address": {"city": "Wien"}}, True),
        ("address.city EXISTS", {"address": {"city": None}}, False),
        ("address.city EXISTS", {"address": "Wien"}, False),
        ('address.city = "Wien"', {"address": {"city": "Wien"}}, True),
        ("NOT member = true", {}, True),
    ],
)
def test_attribute_tests_compare_like_values_only(text, attributes, expected):
    assert evaluate(parse(text), attributes, [], NOW) is expected


def test_an_event_counts_only_inside_its_window_and_with_its_properties():
    expr = parse('event page_view where path starts with "/membership" within 7d')
    inside = event("page_view", timedelta(days=6), path="/membership/join")
    assert evaluate(expr, {}, [inside], NOW) is True
    old = event("page_view", timedelta(days=8), path="/membership")
    other_path = event("page_view", timedelta(hours=1), path="/shop")
    no_path = event("page_view", timedelta(hours=1))
    other_name = event("purchase", timedelta(hours=1), path="/membership")
    later = event("page_view", -timedelta(minutes=1), path="/membership")
    for miss in (old, other_path, no_path, other_name, later):
        assert evaluate(expr, {}, [miss], NOW) is False


def test_property_tests_are_exact_prefix_or_substring():
    e = event("search", timedelta(minutes=5), q="red shoes", n="3")
    assert evaluate(parse('event search where q = "red shoes" within 1h'), {}, [e], NOW)
    assert evaluate(parse("event search where n = 3 within 1h"), {}, [e], NOW)
    assert evaluate(parse('event search where q contains "shoe" within 1h'), {}, [e], NOW)
    assert not evaluate(parse('event search where q = "red" within 1h'), {}, [e], NOW)


def test_the_brief_segment_selects_non_members_on_mobile_who_viewed_the_membership_page():
    expr = parse(BRIEF)
    viewed = [event("page_view", timedelta(days=1), path="/membership")]
    assert evaluate(expr, {"member": False, "device": "mobile"}, viewed, NOW) is True
    assert evaluate(expr, {"member": True, "device": "mobile"}, viewed, NOW) is False
    assert evaluate(expr, {"member": False, "device": "desktop"}, viewed, NOW) is False
    assert evaluate(expr, {"member": False, "device": "mobile"}, [], NOW) is False


def test_without_events_the_answer_is_open_only_where_events_decide():
    expr = parse(BRIEF)
    assert evaluate(expr, {"member": True}, None, NOW) is False
    assert evaluate(expr, {"member": False, "device": "mobile"}, None, NOW) is None
    assert evaluate(parse("x = 1 OR event a within 1d"), {"x": 1}, None, NOW) is True
    assert evaluate(parse("NOT event a within 1d"), {}, None, NOW) is None


attribute_values = st.dictionaries(
    st.sampled_from(["a", "b", "c", "member", "score"]),
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=3)),
)
event_lists = st.lists(
    st.builds(
        lambda n, mins, p: event(n, timedelta(minutes=mins), p=p),
        st.sampled_from(["a", "b"]),
        st.integers(-10, 60 * 24 * 10),
        st.text(max_size=3),
    ),
    max_size=4,
)


@given(exprs, attribute_values, event_lists)
def test_an_answer_given_without_events_never_changes_when_events_are_known(expr, attrs, events):
    partial = evaluate(expr, attrs, None, NOW)
    full = evaluate(expr, attrs, events, NOW)
    assert full is not None
    assert partial is None or partial == full
