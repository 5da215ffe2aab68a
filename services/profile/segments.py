"""Segments: a small filter language over profile attributes and recent events.

    member = false AND device = "mobile"
      AND event page_view where path starts with "/membership" within 7d

Pure: no I/O. `parse` turns text into an expression, or a SegmentError that
names the position; `evaluate` decides one profile. Keywords in any case:

    expr      := and ("OR" and)*
    and       := unary ("AND" unary)*
    unary     := "NOT" unary | "(" expr ")" | event | test
    event     := ["NO"] "EVENT" name ["WHERE" prop ("AND" prop)*] "WITHIN" duration
    prop      := name ("=" (string | number) | "STARTS" "WITH" string | "CONTAINS" string)
    test      := path ("=" | "!=" | "<" | "<=" | ">" | ">=") value | path "EXISTS"
    value     := string | number | "true" | "false"
    name      := word | string                    path := word ("." word)*
    duration  := digits ("m" | "h" | "d")         minutes, hours, days; at most 400d
"""

from __future__ import annotations

from datetime import timedelta

from services.profile.segment_eval import evaluate, event_names, longest_window
from services.profile.segment_syntax import (
    And,
    Compare,
    EventCondition,
    Exists,
    Expr,
    Not,
    Or,
    PropertyTest,
    Scalar,
    SegmentError,
    Token,
    render,
    tokenize,
)

__all__ = ["Expr", "SegmentError", "evaluate", "event_names", "longest_window", "parse", "render"]

MAX_WINDOW = timedelta(days=400)
MAX_DEPTH = 32
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def parse(text: str) -> Expr:
    """The expression `text` stands for; SegmentError with the position if none."""
    parser = _Parser(tokenize(text), len(text))
    expr = parser.expr(0)
    if parser.peek() is not None:
        parser.fail("expected AND, OR or the end")
    return expr


class _Parser:
    def __init__(self, tokens: list[Token], end: int) -> None:
        self.tokens = tokens
        self.i = 0
        self.end = end

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def take(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise SegmentError(f"expected {what}, found the end", self.end)
        self.i += 1
        return tok

    def keyword(self, word: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok.kind == "word" and tok.text.lower() == word

    def is_op(self, ahead: int) -> bool:
        tok = self.peek(ahead)
        return tok is not None and tok.kind == "op"

    def fail(self, message: str) -> None:
        tok = self.peek()
        found = f", found {tok.text!r}" if tok else ", found the end"
        raise SegmentError(message + found, tok.start if tok else self.end)

    def expr(self, depth: int) -> Expr:
        items = [self.conjunction(depth)]
        while self.keyword("or"):
            self.i += 1
            items.append(self.conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, depth: int) -> Expr:
        items = [self.unary(depth)]
        while self.keyword("and"):
            self.i += 1
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Expr:
        tok = self.take("a condition")
        if depth >= MAX_DEPTH:
            raise SegmentError(f"nested more than {MAX_DEPTH} deep", tok.start)
        self.i -= 1
        if tok.kind == "(":
            self.i += 1
            inner = self.expr(depth + 1)
            if (close := self.peek()) is None or close.kind != ")":
                self.fail("expected ')'")
            self.i += 1
            return inner
        # Keywords only where a name cannot be: an attribute may be called `event`.
        if self.keyword("not") and not self.not_is_a_name():
            self.i += 1
            return Not(self.unary(depth + 1))
        if self.keyword("no") and self.keyword("event", 1):
            self.i += 2
            return Not(self.event())
        if self.keyword("event") and not (self.is_op(1) or self.keyword("exists", 1)):
            self.i += 1
            return self.event()
        return self.test()

    def not_is_a_name(self) -> bool:
        """`not = 1` and `not EXISTS` test an attribute called `not`."""
        if self.is_op(1):
            return True
        return self.keyword("exists", 1) and not (self.is_op(2) or self.keyword("exists", 2))

    def event(self) -> EventCondition:
        name = self.name("an event name")
        where: list[PropertyTest] = []
        if self.keyword("where"):
            self.i += 1
            where.append(self.property_test())
            while self.keyword("and"):
                self.i += 1
                where.append(self.property_test())
        if not self.keyword("within"):
            self.fail("expected WITHIN and a duration after the event")
        self.i += 1
        return EventCondition(name, tuple(where), self.duration())

    def property_test(self) -> PropertyTest:
        name = self.name("a property name")
        if self.keyword("starts") and self.keyword("with", 1):
            self.i += 2
            return PropertyTest(name, "starts with", self.string())
        if self.keyword("contains"):
            self.i += 1
            return PropertyTest(name, "contains", self.string())
        if not self.is_op(0) or self.tokens[self.i].text != "=":
            self.fail("expected '=', STARTS WITH or CONTAINS")
        self.i += 1
        value = self.take("a string or number")
        if value.kind not in ("string", "number"):
            raise SegmentError("expected a string or number", value.start)
        # Properties are strings: a number is compared as it was written.
        return PropertyTest(name, "=", str(value.value) if value.kind == "string" else value.text)

    def name(self, what: str) -> str:
        tok = self.take(what)
        if tok.kind not in ("word", "string") or tok.value == "":
            raise SegmentError(f"expected {what}", tok.start)
        return str(tok.value)

    def string(self) -> str:
        tok = self.take("a quoted string")
        if tok.kind != "string":
            raise SegmentError("expected a quoted string", tok.start)
        return str(tok.value)

    def duration(self) -> timedelta:
        tok = self.take("a duration such as 30m, 24h or 7d")
        if tok.kind != "duration":
            raise SegmentError("expected a duration such as 30m, 24h or 7d", tok.start)
        window = int(tok.text[:-1]) * UNITS[tok.text[-1]]
        if not timedelta(0) < window <= MAX_WINDOW:
            raise SegmentError("a window must be above 0 and at most 400d", tok.start)
        return window

    def test(self) -> Expr:
        tok = self.take("an attribute")
        if tok.kind != "word":
            raise SegmentError("expected an attribute name, NOT, EVENT or '('", tok.start)
        path = tuple(tok.text.split("."))
        if self.keyword("exists"):
            self.i += 1
            return Exists(path)
        if not self.is_op(0):
            self.fail("expected a comparison (= != < <= > >=) or EXISTS")
        op = self.tokens[self.i].text
        self.i += 1
        return Compare(path, op, self.value())

    def value(self) -> Scalar:
        tok = self.take("a value")
        if tok.kind in ("string", "number"):
            return tok.value
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        raise SegmentError("expected a value: a quoted string, a number, true or false", tok.start)
