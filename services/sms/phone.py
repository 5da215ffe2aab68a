"""Phone numbers to E.164, the only form an SMS provider is given. Pure: no I/O.

A number that cannot be normalised is a permanent failure decided here, before
any provider call. The reason never repeats the number, so it can go in a
result's `detail` and in logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

# phonenumbers' own reasons, said without the number.
POSSIBILITY_PROBLEMS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong length for its country",
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without an area code",
}
PARSE_PROBLEMS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


@dataclass(frozen=True)
class Unusable:
    """Why a phone number cannot be sent to (never the number itself)."""

    why: str


def to_e164(raw: str, default_region: str) -> str | Unusable:
    """`raw` as E.164 (`+15551234567`), or why it cannot be one.

    Numbers without a `+country code` are read as numbers of `default_region`.
    """
    if not raw.strip():
        return Unusable("empty")
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException as err:
        return Unusable(PARSE_PROBLEMS.get(err.error_type, "not a phone number"))
    problem = POSSIBILITY_PROBLEMS.get(phonenumbers.is_possible_number_with_reason(number))
    if problem is not None:
        return Unusable(problem)
    if not phonenumbers.is_valid_number(number):
        return Unusable("not a valid number for its country")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)
