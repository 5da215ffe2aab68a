"""What a worker does with each provider answer. Pure: no I/O."""

from __future__ import annotations

from typing import Literal

from services.channels.provider import SendResult

Action = Literal["sent", "failed", "retry", "dead"]

# The DeliveryRecord state each action leaves behind. A retry stays `sending`:
# it is still in flight, through a delay queue.
RECORD_STATE: dict[Action, str] = {
    "sent": "sent",
    "failed": "failed",
    "retry": "sending",
    "dead": "dead",
}


def action_for(result: SendResult, attempts: int, max_attempts: int) -> Action:
    """Sent stays sent, permanent fails at once, transient retries until the last attempt."""
    if result.outcome == "sent":
        return "sent"
    if result.outcome == "permanent":
        return "failed"
    return "retry" if attempts < max_attempts else "dead"
