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
# A dead letter sent back through the pipeline by `sendmesh dlq replay`.
REPLAYED = "replayed"
TEMPLATE_NOT_FOUND = "template_not_found"
WRONG_CHANNEL = "wrong_channel"

# Provider outcomes (channel workers).
PROVIDER_UNAVAILABLE = "provider_unavailable"  # timeout, connection refused, 5xx, SMTP 4xx
RATE_LIMITED = "rate_limited"  # 429 (Retry-After honoured)
INVALID_CONTACT = "invalid_contact"  # bad address or number, rejected by the provider
PROVIDER_REJECTED = "provider_rejected"  # any other permanent refusal (4xx, SMTP 5xx)
SUBSCRIPTION_GONE = "subscription_gone"  # web push 404/410: the subscription is pruned
ENDPOINT_FORBIDDEN = "endpoint_forbidden"  # push endpoint resolves to a private address
RENDER_ERROR = "render_error"  # a template needs a variable it was not given
# Carrier receipts (SMS status callbacks), reported after SENT.
DELIVERED = "delivered"  # the carrier handed it to the handset
UNDELIVERED = "undelivered"  # the carrier could not (failed, undelivered)

# Decision stages (eligibility, frequency, scheduler).
NO_CONSENT = "no_consent"
OPTED_OUT = "opted_out"
SUPPRESSED = "suppressed"
EXCLUDED_BY_RULE = "excluded_by_rule"
QUIET_HOURS = "quiet_hours"
CAPPED = "capped"
SCHEDULED = "scheduled"
RESERVED = "reserved"  # a cap slot was taken under every matching policy

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
        REPLAYED,
        TEMPLATE_NOT_FOUND,
        WRONG_CHANNEL,
        PROVIDER_UNAVAILABLE,
        RATE_LIMITED,
        INVALID_CONTACT,
        PROVIDER_REJECTED,
        SUBSCRIPTION_GONE,
        ENDPOINT_FORBIDDEN,
        RENDER_ERROR,
        DELIVERED,
        UNDELIVERED,
        NO_CONSENT,
        OPTED_OUT,
        SUPPRESSED,
        EXCLUDED_BY_RULE,
        QUIET_HOURS,
        CAPPED,
        SCHEDULED,
        RESERVED,
    }
)
