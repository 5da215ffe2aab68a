"""Metrics every service exports. Labels come from a closed set only:
service, method, code, channel, provider, outcome, reason, queue, kind
(and the go-grpc-prometheus grpc_* names) — never a tenant, user or message id.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

from shared import reasons

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Delivery processing: in-app's 5-50 ms up to retries' minutes; 1 is the SLO's bucket.
PROCESSING_BUCKETS = (
    0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    30, 60, 120, 300, 600, 1800, 3600,
)  # fmt: skip
# Time deferred on purpose: a short send_at up to a week of caps.
DEFERRAL_BUCKETS = (
    1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200,
    86400, 172800, 345600, 604800,
)  # fmt: skip

# gRPC server RED, named as go-grpc-prometheus names them so dashboards work.
GRPC_STARTED = Counter(
    "grpc_server_started_total",
    "RPCs started on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by status code.",
    ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
)
GRPC_HANDLING = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle an RPC on the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_MSG_SENT = Counter(
    "grpc_server_msg_sent_total",
    "Stream messages sent by the server.",
    ["grpc_type", "grpc_service", "grpc_method"],
)

# Queue consumers.
CONSUMED = Counter(
    "sendmesh_consumer_messages_total",
    "Messages a consumer finished with, by outcome (ok, retried, dead_lettered, requeued).",
    ["queue", "outcome"],
)
CONSUMER_HANDLING = Histogram(
    "sendmesh_consumer_batch_handling_seconds",
    "Time to handle one batch: decode, decide, publish with confirms, ack.",
    ["queue"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_BATCH = Histogram(
    "sendmesh_consumer_batch_size_messages",
    "Messages per consumed batch.",
    ["queue"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
CONSUMER_IN_FLIGHT = Gauge(
    "sendmesh_consumer_in_flight_messages",
    "Messages received and not yet acknowledged.",
    ["queue"],
)
PUBLISHED = Counter(
    "sendmesh_bus_published_messages_total",
    "Messages published with a broker confirm, by outcome (ok, failed).",
    ["outcome"],
)

# Storage.
SQLITE_BUSY_WAITS = Counter(
    "sendmesh_sqlite_busy_waits_total",
    "Times a SQLite statement found another writer holding the lock and waited.",
)

# Domain.
INTENTS_RECEIVED = Counter(
    "sendmesh_intents_received_total",
    "Intents accepted by intake, by kind (duplicates not counted).",
    ["kind"],
)
DECISIONS = Counter(
    "sendmesh_decisions_total",
    "Delivery decisions by the stage that made them, the state and the reason code.",
    ["stage", "outcome", "reason"],
)
DELIVERIES = Counter(
    "sendmesh_deliveries_total",
    "Channel worker outcomes by channel, provider and outcome.",
    ["channel", "provider", "outcome"],
)
# Accepted -> sent, split in two: what the mesh took (from the due time: the
# accept, or the end of the deferral a delivery waited out) and what it
# waited on purpose (quiet hours, send_at, a cap window). Processing buckets
# resolve in-app's milliseconds and retries' minutes; deferral ones, days.
END_TO_END = Histogram(
    "sendmesh_delivery_latency_seconds",
    "Due to sent (accepted, or the end of a deferral), by channel: processing, not waiting.",
    ["channel"],
    buckets=PROCESSING_BUCKETS,
)
DEFERRED_FOR = Histogram(
    "sendmesh_delivery_deferred_seconds",
    "Accepted to due, of sent deliveries that were deferred, by channel.",
    ["channel"],
    buckets=DEFERRAL_BUCKETS,
)
OUTBOX_BACKLOG = Gauge(
    "sendmesh_outbox_backlog_messages",
    "Intents stored but not yet published to the plan queue.",
)
# Deferred deliveries (quiet hours, caps, send_at) and the scheduler.
DEFERRED_PENDING = Gauge(
    "sendmesh_scheduler_deferred_deliveries",
    "Deferred deliveries stored and not yet due or released.",
)
SCHEDULER_LAG = Histogram(
    "sendmesh_scheduler_lag_seconds",
    "How late a deferred delivery was put back on its queue, after its due time.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
DEFERRED_TOTAL = Counter(
    "sendmesh_deferrals_total",
    "Deliveries deferred, by the stage that deferred them and why.",
    ["stage", "reason"],
)
CAP_RESERVATIONS = Counter(
    "sendmesh_cap_reservations_total",
    "Cap reservations, by outcome (granted, capped, released, no_policy).",
    ["outcome"],
)
PROVIDER_CALL = Histogram(
    "sendmesh_provider_call_seconds",
    "Time of one provider call (a batch of messages), by channel and provider.",
    ["channel", "provider"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "sendmesh_provider_errors_total",
    "Messages a provider did not accept, by channel, provider and reason.",
    ["channel", "provider", "reason"],
)
PROVIDER_THROTTLED = Counter(
    "sendmesh_provider_throttled_seconds_total",
    "Time a channel worker waited on its provider's rate limit before calling it.",
    ["channel", "provider"],
)
# Provider feedback: kind is hard_bounce, complaint, opt_out, opt_in or help.
FEEDBACK = Counter(
    "sendmesh_feedback_total",
    "Provider feedback published (bounces, complaints, SMS keywords), by channel and kind.",
    ["channel", "kind"],
)
WEBHOOK_REQUESTS = Counter(
    "sendmesh_webhook_requests_total",
    "Provider webhook requests by channel and outcome "
    "(accepted, ignored, forbidden, unauthenticated, malformed, unavailable).",
    ["channel", "outcome"],
)

BUILD_INFO = Info("sendmesh_build", "Version of the running service.")


def count_decision(stage: str, outcome: str, reason: str, n: int = 1) -> None:
    # Guard the label set: an unknown reason would be a new series per typo.
    DECISIONS.labels(stage, outcome, reason if reason in reasons.ALL else "other").inc(n)


def observe_sent(
    channel: str, accepted: datetime, due: datetime | None, sent: datetime, n: int = 1
) -> None:
    """A sent delivery's latency (or `n` alike: a batch's deliveries of one
    envelope share their times): processing from its due time, and the time
    it spent deferred if it was (a due time after its accept)."""
    start = accepted if due is None else max(due, accepted)
    start = min(start, max(sent, accepted))  # a due time not yet reached: no deferral to count
    latency = END_TO_END.labels(channel)
    processing = max((sent - start).total_seconds(), 0.0)
    for _ in range(n):
        latency.observe(processing)
    if start > accepted:
        deferred = DEFERRED_FOR.labels(channel)
        waited = (start - accepted).total_seconds()
        for _ in range(n):
            deferred.observe(waited)


def serve_metrics(host: str, port: int) -> object | None:
    """Start the /metrics endpoint in a thread; port 0 means off."""
    if port == 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    return server
