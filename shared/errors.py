"""One error taxonomy: retry what may pass, dead-letter what never will.

Suppressed and capped are outcomes returned as values, never exceptions.
"""

from __future__ import annotations


class SendmeshError(Exception):
    """Base of the errors a stage raises on purpose."""

    reason: str = "error"

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class TransientError(SendmeshError):
    """May succeed later: retried with back-off through a delay queue."""

    reason = "transient"

    def __init__(
        self, detail: str, *, reason: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(detail, reason=reason)
        self.retry_after_s = retry_after_s


class PermanentError(SendmeshError):
    """Will never succeed as it is: goes to dead letters at once."""

    reason = "permanent"
