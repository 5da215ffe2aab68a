"""The inbox's states and the marks that move a message between them. Pure: no I/O.

A message is unseen, seen or read (read implies seen), and independently in
the feed or archived. Every mark is idempotent: it only touches messages not
already in its state, so marking twice keeps the first timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Status(Enum):
    """Which messages a listing shows. Only ARCHIVED shows archived ones."""

    ALL = "all"
    UNREAD = "unread"
    UNSEEN = "unseen"
    ARCHIVED = "archived"


class Mark(Enum):
    SEEN = "seen"
    READ = "read"
    UNREAD = "unread"
    ARCHIVED = "archived"
    UNARCHIVED = "unarchived"


@dataclass(frozen=True)
class Transition:
    """What a mark does to one message: set `column` to now where it is unset,
    or clear it where it is set; `implies_seen` also sets seen_at where unset."""

    column: str
    sets: bool
    implies_seen: bool = False


TRANSITIONS: dict[Mark, Transition] = {
    Mark.SEEN: Transition("seen_at", sets=True),
    Mark.READ: Transition("read_at", sets=True, implies_seen=True),
    # Unread keeps seen_at: the user has seen it, and the badge of unseen
    # messages should not grow back because of a choice they made.
    Mark.UNREAD: Transition("read_at", sets=False),
    Mark.ARCHIVED: Transition("archived_at", sets=True),
    Mark.UNARCHIVED: Transition("archived_at", sets=False),
}


@dataclass(frozen=True)
class Target:
    """The messages a mark applies to: the named ones (archived or not), or,
    with `up_to` set, every message in the feed delivered up to then."""

    message_ids: tuple[str, ...] = ()
    up_to: datetime | None = None

    @classmethod
    def named(cls, message_ids: tuple[str, ...]) -> Target:
        return cls(message_ids=message_ids)

    @classmethod
    def feed_up_to(cls, when: datetime) -> Target:
        return cls(up_to=when)

    @property
    def is_all(self) -> bool:
        return self.up_to is not None


def up_to_now(requested: datetime | None, now: datetime) -> datetime:
    """The cut-off of an all-messages mark: what the client asked, never later than now,
    so a message delivered after the call is never marked by it."""
    return now if requested is None or requested > now else requested
