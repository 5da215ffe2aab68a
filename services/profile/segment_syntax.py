"""The segment language's words and trees: tokens, expressions, and their text.

Pure: no I/O. The parser and the evaluator are in services/profile/segments.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

Scalar = str | int | float | bool

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<duration>\d+[mhd](?![A-Za-z0-9_.]))
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<string>"(?:[^"\\\x00-\x1f]|\\.)*")
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<paren>[()])""",
    re.VERBOSE,
)
# Words the parser gives a meaning to somewhere; names that are one are
# written quoted, so the text always parses back to the same expression.
KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "no",
        "event",
        "where",
        "within",
        "starts",
        "with",
        "contains",
        "exists",
        "true",
        "false",
    ]
)


class SegmentError(ValueError):
    """The text is not a segment; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} (at column {position + 1})")
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # word, string, number, duration, op, ( or )
    text: str
    start: int
    value: Scalar


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if m is None:
            if text[pos] == '"':
                raise SegmentError("unterminated string", pos)
            raise SegmentError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        raw = m.group()
        if kind == "paren":
            tokens.append(Token(raw, raw, pos, raw))
        elif kind != "space":
            tokens.append(Token(kind, raw, pos, _value(kind, raw, pos)))
        pos = m.end()
    return tokens


def _value(kind: str, raw: str, pos: int) -> Scalar:
    if kind == "string":
        try:
            return str(json.loads(raw))
        except ValueError:
            raise SegmentError("bad escape in string", pos) from None
    if kind == "number":
        return float(raw) if any(c in raw for c in ".eE") else int(raw)
    return raw


@dataclass(frozen=True)
class Compare:
    path: tuple[str, ...]
    op: str
    value: Scalar


@dataclass(frozen=True)
class Exists:
    path: tuple[str, ...]


@dataclass(frozen=True)
class PropertyTest:
    name: str
    op: str  # =, starts with, contains
    value: str


@dataclass(frozen=True)
class EventCondition:
    """The user did `name` (with these properties) within `within` before now."""

    name: str
    where: tuple[PropertyTest, ...]
    within: timedelta


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class And:
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Expr, ...]


Expr = Compare | Exists | EventCondition | Not | And | Or


def render(expr: Expr) -> str:
    """Canonical text of `expr`; parsing it gives `expr` back."""
    if isinstance(expr, Compare):
        return f"{'.'.join(expr.path)} {expr.op} {render_value(expr.value)}"
    if isinstance(expr, Exists):
        return f"{'.'.join(expr.path)} EXISTS"
    if isinstance(expr, EventCondition):
        where = " AND ".join(
            f"{render_name(t.name)} {t.op} {json.dumps(t.value)}" for t in expr.where
        )
        clause = f" WHERE {where}" if where else ""
        return f"EVENT {render_name(expr.name)}{clause} WITHIN {render_window(expr.within)}"
    if isinstance(expr, Not):
        return f"NOT {_grouped(expr.operand)}"
    joiner = " AND " if isinstance(expr, And) else " OR "
    return joiner.join(_grouped(item) for item in expr.operands)


def _grouped(expr: Expr) -> str:
    return f"({render(expr)})" if isinstance(expr, And | Or) else render(expr)


def render_name(name: str) -> str:
    plain = WORD.fullmatch(name) and name.lower() not in KEYWORDS
    return name if plain else json.dumps(name, ensure_ascii=False)


def render_value(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def render_window(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
