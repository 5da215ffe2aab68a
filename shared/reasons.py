"""The closed vocabulary of reason codes on decisions, events and metrics.

A reason is a label value in metrics, so this set must stay small and fixed.
"""

from __future__ import annotations

ALLOWED = "allowed"
PLANNED = "planned"
UNKNOWN_RECIPIENT = "unknown_recipient"
NO_CONTACT_POINT = "no_contact_point"
NO_CONTENT = "no_content"
NO_CAP_POLICY = "no_cap_policy"
FALLBACK_NOT_NEEDED = "fallback_not_needed"
EXPIRED = "expired"
CANCELLED = "cancelled"
SENT = "sent"
DUPLICATE = "duplicate"
PROVIDER_ERROR = "provider_error"
MAX_ATTEMPTS = "max_attempts"
UNDECODABLE = "undecodable"
TEMPLATE_NOT_FOUND = "template_not_found"
WRONG_CHANNEL = "wrong_channel"

ALL = frozenset(
    {
        ALLOWED,
        PLANNED,
        UNKNOWN_RECIPIENT,
        NO_CONTACT_POINT,
        NO_CONTENT,
        NO_CAP_POLICY,
        FALLBACK_NOT_NEEDED,
        EXPIRED,
        CANCELLED,
        SENT,
        DUPLICATE,
        PROVIDER_ERROR,
        MAX_ATTEMPTS,
        UNDECODABLE,
        TEMPLATE_NOT_FOUND,
        WRONG_CHANNEL,
    }
)
