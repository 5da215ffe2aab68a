from __future__ import annotations

import pytest

from services.sms.segments import GSM7_BASIC, GSM7_EXTENSION, SmsSize, encoding_of, measure


def test_every_gsm_character_keeps_the_text_gsm7():
    assert encoding_of("".join(GSM7_BASIC) + "".join(GSM7_EXTENSION)) == "gsm7"


# Lower-case ç is not in GSM 03.38 (only Ç is); nor are curly quotes or Greek Alpha.
@pytest.mark.parametrize(
    "text",
    [
        "ça va",
        "don\u2019t",
        "Привет",
        "\u0391",
        "👍",
        "日本",
    ],
)
def test_one_character_outside_gsm_03_38_makes_the_whole_text_ucs2(text):
    assert encoding_of(text) == "ucs2"


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)]
)
def test_gsm7_fits_160_in_one_segment_then_153_per_segment(length, segments):
    assert measure("a" * length) == SmsSize("gsm7", length, segments)


def test_an_extension_character_costs_two_septets():
    assert measure("€" * 80) == SmsSize("gsm7", 160, 1)
    assert measure("{" * 81) == SmsSize("gsm7", 162, 2)


def test_an_escape_sequence_is_never_split_across_two_segments():
    # 306 septets would fit two segments of 153, but the € cannot straddle them.
    assert measure("a" * 152 + "€" + "a" * 152) == SmsSize("gsm7", 306, 3)


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_fits_70_in_one_segment_then_67_per_segment(length, segments):
    assert measure("ж" * length) == SmsSize("ucs2", length, segments)


def test_an_emoji_costs_two_ucs2_units_and_is_never_split():
    assert measure("😀" * 35) == SmsSize("ucs2", 70, 1)
    assert measure("ж" * 66 + "😀" + "ж" * 66) == SmsSize("ucs2", 134, 3)


def test_an_empty_text_costs_no_segment():
    assert measure("") == SmsSize("gsm7", 0, 0)


def test_the_facts_are_the_encoding_and_segments_as_strings():
    assert measure("ж" * 71).facts() == {"encoding": "ucs2", "segments": "2"}
