"""How a text travels as SMS: its encoding and how many segments it costs. Pure.

A text made only of GSM 03.38 characters goes as GSM-7 (7-bit septets);
anything else turns the whole message into UCS-2 (16-bit code units).
A concatenated message spends part of each segment on its header, so the
per-segment room drops from 160 to 153 septets (70 to 67 code units).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["gsm7", "ucs2"]

# GSM 03.38 basic set, in table order; 0x1B (the escape to the extension
# table) is not a character of its own and is left out.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as escape + character, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"gsm7": 160, "ucs2": 70}
CONCATENATED = {"gsm7": 153, "ucs2": 67}


@dataclass(frozen=True)
class SmsSize:
    """What a text costs: encoding, units (septets or UTF-16 units), segments."""

    encoding: Encoding
    units: int
    segments: int

    def facts(self) -> dict[str, str]:
        """The closed keys reported on SendResult.facts."""
        return {"encoding": self.encoding, "segments": str(self.segments)}


def encoding_of(text: str) -> Encoding:
    """gsm7 when every character has a GSM 03.38 septet (basic or extension)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return "gsm7"
    return "ucs2"


def unit_costs(text: str, encoding: Encoding) -> list[int]:
    """Units each character takes: 2 for an extension char or an astral (emoji) one."""
    if encoding == "gsm7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def pack(costs: Iterable[int], room: int) -> int:
    """Segments needed when no character may be split across two segments.

    Phones cannot rejoin an escape sequence or a surrogate pair cut in half,
    so a character that does not fit whole starts the next segment.
    """
    segments, used = 1, 0
    for cost in costs:
        if used + cost > room:
            segments, used = segments + 1, 0
        used += cost
    return segments


def measure(text: str) -> SmsSize:
    """Encoding, units and segments of `text` (an empty text costs no segment)."""
    encoding = encoding_of(text)
    costs = unit_costs(text, encoding)
    units = sum(costs)
    if units == 0:
        return SmsSize(encoding, 0, 0)
    if units <= SINGLE[encoding]:
        return SmsSize(encoding, units, 1)
    return SmsSize(encoding, units, pack(costs, CONCATENATED[encoding]))
