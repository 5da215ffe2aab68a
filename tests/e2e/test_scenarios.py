"""The marketers' scenarios, end to end through the gRPC APIs on the real broker.

The whole pipeline runs in this process (tests/e2e/test_pipeline.py's mesh:
intake, profile, eligibility, frequency, email, in-app and the scheduler);
everything is done as a caller would do it, and read where a caller or a user
would read it: GetIntent, the inbox, GetUsage, ListDeferred.

Time-dependent scenarios compute their instants from the clock and poll with
deadlines; they wait only as long as the scenario itself says (a send_at a few
seconds ahead, the end of a quiet window).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.duration_pb2 import Duration
from sendmesh.frequency.v1 import frequency_pb2
from sendmesh.inapp.v1 import inbox_pb2
from sendmesh.intake.v1 import intake_pb2
from sendmesh.intent.v1 import intent_pb2
from sendmesh.profile.v1 import profile_pb2
from sendmesh.scheduler.v1 import scheduler_pb2

from shared.clock import from_timestamp, to_timestamp, utcnow
from tests.e2e import test_pipeline as pipeline
from tests.e2e.test_pipeline import I, Mesh, by_delivery, current, eventually, history

# The in-process pipeline, started afresh for every scenario.
mesh = pipeline.mesh

C = intent_pb2.Channel
S = intent_pb2.DeliveryState
INAPP = C.CHANNEL_INAPP
MARKETING = intent_pb2.KIND_MARKETING
VIENNA = ZoneInfo("Europe/Vienna")
# How long a step of the pipeline may take on a busy machine before we give up.
SETTLE_S = 20.0


# -- what a caller does ---------------------------------------------------------


async def upsert(
    mesh: Mesh,
    user: str,
    *,
    timezone: str = "Europe/Vienna",
    attributes: dict[str, Any] | None = None,
    quiet: tuple[int, int] | None = None,
) -> None:
    """A profile that opted in to marketing on every channel."""
    p = profile_pb2.Profile(user_id=user, locale="en", timezone=timezone)
    p.attributes.update(attributes or {})
    if quiet is not None:
        p.quiet_hours.start_minute, p.quiet_hours.end_minute = quiet
    meta = mesh.tenants.metadata()
    await mesh.profiles.UpsertProfile(profile_pb2.UpsertProfileRequest(profile=p), metadata=meta)
    consent = profile_pb2.Consent(granted=True, source="e2e")
    await mesh.profiles.SetConsent(
        profile_pb2.SetConsentRequest(user_id=user, consent=consent), metadata=meta
    )


async def record(
    mesh: Mesh, user: str, name: str, at: datetime | None = None, **properties: str
) -> None:
    event = profile_pb2.BehaviourEvent(name=name, properties=properties)
    event.occurred_at.CopyFrom(to_timestamp(at or utcnow()))
    await mesh.profiles.RecordEvent(
        profile_pb2.RecordEventRequest(user_id=user, event=event), metadata=mesh.tenants.metadata()
    )


def inapp_intent(
    key: str,
    *,
    users: Sequence[str] = (),
    topic: str = "",
    segment: str = "",
    kind: int = MARKETING,
    category: str = "promo",
    title: str = "Hello",
) -> intent_pb2.SendIntent:
    intent = intent_pb2.SendIntent(
        idempotency_key=key,
        category=category,
        kind=kind,  # type: ignore[arg-type]
        channels=[INAPP],
    )
    if users:
        intent.audience.user_ids.extend(users)
    elif topic:
        intent.audience.topic = topic
    else:
        intent.audience.segment = segment
    intent.content.inline.inapp.title = title
    intent.content.inline.inapp.body = "for you"
    return intent


def rule(event: str, within: timedelta, **properties: str) -> intent_pb2.BehaviourRule:
    return intent_pb2.BehaviourRule(
        event=event, within=Duration(seconds=int(within.total_seconds())), properties=properties
    )


async def inapp_status(mesh: Mesh, intent_id: str, user: str) -> intake_pb2.DeliveryStatus | None:
    return by_delivery(await mesh.get(intent_id)).get((user, INAPP))


async def reaches(
    mesh: Mesh, intent_id: str, user: str, state: int, within_s: float = SETTLE_S
) -> intake_pb2.DeliveryStatus:
    """The user's in-app delivery once its current state is `state`."""

    async def probe() -> intake_pb2.DeliveryStatus | None:
        status = await inapp_status(mesh, intent_id, user)
        return status if status is not None and status.current.state == state else None

    name = S.Name(state)  # type: ignore[arg-type]
    return await eventually(probe, within_s, f"{user}'s delivery of {intent_id} never {name}")


async def inbox_titles(mesh: Mesh, user: str) -> list[str]:
    listing = await mesh.inbox.ListInbox(
        inbox_pb2.ListInboxRequest(user_id=user), metadata=mesh.tenants.metadata()
    )
    return sorted(m.title for m in listing.messages)


def decision(status: intake_pb2.DeliveryStatus, stage: str, state: int) -> intent_pb2.Decision:
    [found] = [h for h in status.history if (h.stage, h.state) == (stage, state)]
    return found


async def deferred(mesh: Mesh, intent_id: str = "") -> list[scheduler_pb2.Deferred]:
    listing = await mesh.scheduler.ListDeferred(
        scheduler_pb2.ListDeferredRequest(intent_id=intent_id, page_size=500),
        metadata=mesh.tenants.metadata(),
    )
    return list(listing.deferred)


# -- a. the abandoned cart --------------------------------------------------------


async def test_a_cart_reminder_is_dropped_after_a_checkout_sent_without_one_and_stopped_by_its_cart_id(
    mesh: Mesh,
):
    users = {"checks-out": "cart-1", "keeps-browsing": "cart-2", "forgets": "cart-3"}
    for user, cart in users.items():
        await upsert(mesh, user)
        await record(mesh, user, "cart_add", cart=cart)
    # Due a few seconds from now: long enough to check out (or cancel) in between.
    due = utcnow() + timedelta(seconds=4)
    ids: dict[str, str] = {}
    for user, cart in users.items():
        intent = inapp_intent(f"reminder-{cart}", users=[user], category="cart_reminder")
        intent.exclude_if.append(rule("checkout", timedelta(hours=1)))
        intent.timing.send_at.CopyFrom(to_timestamp(due))
        intent.cancel_key = cart
        ids[user] = await mesh.submit(intent)

    for user, intent_id in ids.items():
        held = await reaches(mesh, intent_id, user, S.DELIVERY_STATE_SCHEDULED)
        assert current(held) == ("eligibility", S.DELIVERY_STATE_SCHEDULED, "scheduled")
        assert from_timestamp(held.current.not_before) == due
    assert utcnow() < due, "the reminders were not held before they were due"

    await record(mesh, "checks-out", "checkout", cart="cart-1")
    stopped = await mesh.intake.CancelIntent(
        intake_pb2.CancelIntentRequest(cancel_key="cart-3"), metadata=mesh.tenants.metadata()
    )
    assert list(stopped.intent_ids) == [ids["forgets"]]

    sent = await reaches(mesh, ids["keeps-browsing"], "keeps-browsing", S.DELIVERY_STATE_SENT)
    released = decision(sent, "eligibility", S.DELIVERY_STATE_PENDING)
    assert from_timestamp(released.at) >= due
    assert await inbox_titles(mesh, "keeps-browsing") == ["Hello"]

    # Eligibility let it through at release (the profile snapshot predates the
    # checkout); the last look before the send saw the checkout.
    dropped = await reaches(mesh, ids["checks-out"], "checks-out", S.DELIVERY_STATE_SUPPRESSED)
    assert current(dropped) == ("inapp", S.DELIVERY_STATE_SUPPRESSED, "excluded_by_rule")
    assert dropped.current.detail.startswith("checkout within 1h (at ")
    assert history(dropped) == [
        ("profile", "planned"),
        ("eligibility", "scheduled"),
        ("eligibility", "allowed"),
        ("frequency", "no_cap_policy"),
        ("inapp", "excluded_by_rule"),
    ]

    cancelled = await reaches(mesh, ids["forgets"], "forgets", S.DELIVERY_STATE_CANCELLED)
    assert current(cancelled) == ("scheduler", S.DELIVERY_STATE_CANCELLED, "cancelled")
    assert (await mesh.get(ids["forgets"])).state == I.INTENT_STATE_CANCELLED
    assert await deferred(mesh) == []
    assert await inbox_titles(mesh, "checks-out") == []
    assert await inbox_titles(mesh, "forgets") == []


# -- b. a promotion, not for recent buyers ------------------------------------------


async def test_a_promotion_to_a_topic_is_suppressed_for_the_member_who_bought_the_item_recently(
    mesh: Mesh,
):
    two_hours_ago = utcnow() - timedelta(hours=2)
    members = ["bought-the-tv", "bought-a-cable", "just-looking"]
    for user in members:
        await upsert(mesh, user)
    await record(mesh, "bought-the-tv", "purchase", two_hours_ago, sku="tv-55")
    await record(mesh, "bought-a-cable", "purchase", two_hours_ago, sku="hdmi-2m")
    await mesh.profiles.Subscribe(
        profile_pb2.SubscribeRequest(topic="tv-deals", user_ids=members),
        metadata=mesh.tenants.metadata(),
    )
    intent = inapp_intent("tv-promo", topic="tv-deals", title="TV sale")
    intent.exclude_if.append(rule("purchase", timedelta(hours=24), sku="tv-55"))

    view = await mesh.completed(await mesh.submit(intent))

    deliveries = by_delivery(view)
    assert sorted(user for user, _ in deliveries) == sorted(members)
    excluded = deliveries[("bought-the-tv", INAPP)]
    assert current(excluded) == ("eligibility", S.DELIVERY_STATE_SUPPRESSED, "excluded_by_rule")
    at = two_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert excluded.current.detail == f"purchase within 24h (at {at})"
    for user in ("bought-a-cable", "just-looking"):
        assert current(deliveries[(user, INAPP)]) == ("inapp", S.DELIVERY_STATE_SENT, "sent")
        assert await inbox_titles(mesh, user) == ["TV sale"]
    assert await inbox_titles(mesh, "bought-the-tv") == []


# -- c. the membership segment -----------------------------------------------------


MEMBERSHIP = (
    'member = false AND device = "mobile" '
    'AND event page_view where path starts with "/membership" within 7d'
)


async def test_a_membership_segment_reaches_exactly_the_mobile_non_members_who_looked_at_membership(
    mesh: Mesh,
):
    now = utcnow()
    people: dict[str, tuple[dict[str, Any], str, timedelta]] = {
        # attributes, page viewed, how long ago
        "yes-gold": ({"member": False, "device": "mobile"}, "/membership/gold", timedelta(days=2)),
        "yes-today": ({"member": False, "device": "mobile"}, "/membership", timedelta(hours=1)),
        "already-member": ({"member": True, "device": "mobile"}, "/membership", timedelta(1)),
        "on-desktop": ({"member": False, "device": "desktop"}, "/membership", timedelta(1)),
        "too-long-ago": ({"member": False, "device": "mobile"}, "/membership", timedelta(8)),
        "other-page": ({"member": False, "device": "mobile"}, "/pricing", timedelta(1)),
    }
    for user, (attributes, path, ago) in people.items():
        await upsert(mesh, user, attributes=attributes)
        await record(mesh, user, "page_view", now - ago, path=path)
    # Not in the segment without an attribute, not even a view of its own.
    await upsert(mesh, "no-attributes")

    counted = await mesh.profiles.CountAudience(
        profile_pb2.CountAudienceRequest(audience=intent_pb2.Audience(segment=MEMBERSHIP)),
        metadata=mesh.tenants.metadata(),
    )
    view = await mesh.completed(
        await mesh.submit(inapp_intent("membership", segment=MEMBERSHIP, title="Join"))
    )

    reached = sorted(user for user, _ in by_delivery(view))
    assert reached == ["yes-gold", "yes-today"]
    assert counted.count == 2
    for user in [*people, "no-attributes"]:
        assert await inbox_titles(mesh, user) == (["Join"] if user in reached else [])


# -- d. caps under concurrency -----------------------------------------------------


async def given_an_inapp_cap_of_two_a_day(mesh: Mesh) -> None:
    policy = frequency_pb2.CapPolicy(
        policy_id="inapp_daily",
        channel=INAPP,
        kind=MARKETING,
        limit=2,
        window_kind=frequency_pb2.WINDOW_KIND_CALENDAR_DAY,
    )
    await mesh.frequency.PutCapPolicy(
        frequency_pb2.PutCapPolicyRequest(policy=policy), metadata=mesh.tenants.metadata()
    )


async def submit_concurrently(mesh: Mesh, prefix: str, on_capped: int) -> list[str]:
    intents = []
    for n in range(10):
        intent = inapp_intent(f"{prefix}-{n}", users=["busy"], title=f"offer {n}")
        intent.on_capped = on_capped  # type: ignore[assignment]
        intents.append(intent)
    return list(await asyncio.gather(*(mesh.submit(i) for i in intents)))


async def test_ten_concurrent_intents_under_a_cap_of_two_send_exactly_two_and_drop_eight(
    mesh: Mesh,
):
    await given_an_inapp_cap_of_two_a_day(mesh)
    await upsert(mesh, "busy")

    ids = await submit_concurrently(mesh, "drop", intent_pb2.CAP_ACTION_DROP)
    views = [await mesh.completed(i) for i in ids]

    outcomes = [by_delivery(v)[("busy", INAPP)] for v in views]
    assert Counter(current(o) for o in outcomes) == {
        ("inapp", S.DELIVERY_STATE_SENT, "sent"): 2,
        ("frequency", S.DELIVERY_STATE_CAPPED, "capped"): 8,
    }
    capped = [o for o in outcomes if o.current.state == S.DELIVERY_STATE_CAPPED]
    assert {o.current.detail for o in capped} == {"policy inapp_daily: 2/2 today"}
    assert len(await inbox_titles(mesh, "busy")) == 2
    usage = await mesh.frequency.GetUsage(
        frequency_pb2.GetUsageRequest(user_id="busy", timezone="Europe/Vienna"),
        metadata=mesh.tenants.metadata(),
    )
    assert [(u.policy_id, u.used, u.limit) for u in usage.usage] == [("inapp_daily", 2, 2)]
    assert await deferred(mesh) == []


async def test_ten_concurrent_intents_under_a_cap_of_two_send_two_and_defer_eight_to_the_scheduler(
    mesh: Mesh,
):
    await given_an_inapp_cap_of_two_a_day(mesh)
    await upsert(mesh, "busy")
    today = utcnow().astimezone(VIENNA).date()
    midnight = datetime.combine(today + timedelta(days=1), time(0), tzinfo=VIENNA)

    ids = await submit_concurrently(mesh, "defer", intent_pb2.CAP_ACTION_DEFER)

    async def settled() -> list[intake_pb2.DeliveryStatus] | None:
        found = [await inapp_status(mesh, i, "busy") for i in ids]
        done = [f for f in found if f is not None and f.current.state != S.DELIVERY_STATE_PENDING]
        return done if len(done) == len(ids) else None

    outcomes = await eventually(settled, SETTLE_S, "the ten deliveries never settled")
    assert Counter(current(o) for o in outcomes) == {
        ("inapp", S.DELIVERY_STATE_SENT, "sent"): 2,
        ("frequency", S.DELIVERY_STATE_SCHEDULED, "capped"): 8,
    }
    waiting = [o for o in outcomes if o.current.state == S.DELIVERY_STATE_SCHEDULED]
    assert {from_timestamp(o.current.not_before) for o in waiting} == {midnight}

    async def held() -> list[scheduler_pb2.Deferred] | None:
        rows = await deferred(mesh)
        return rows if len(rows) == 8 else None

    rows = await eventually(held, SETTLE_S, "the scheduler never held eight deliveries")
    assert sorted(r.delivery_id for r in rows) == sorted(o.delivery_id for o in waiting)
    assert {(r.user_id, r.channel, r.stage, r.reason) for r in rows} == {
        ("busy", INAPP, "frequency", "capped")
    }
    assert {from_timestamp(r.due_at) for r in rows} == {midnight}
    assert len(await inbox_titles(mesh, "busy")) == 2
    states = Counter([(await mesh.get(i)).state for i in ids])
    assert states == {I.INTENT_STATE_COMPLETED: 2, I.INTENT_STATE_PROCESSING: 8}


# -- e. quiet hours ---------------------------------------------------------------


def quiet_window_ending_soon(zone: ZoneInfo, now: datetime) -> tuple[int, int, datetime]:
    """(start, end) local minutes of a window that holds `now` and ends at the
    next minute on the recipient's clock (or the one after, if that is too
    close to hold a delivery before it), and the instant it ends."""
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    to_next = 60 - local.second - local.microsecond / 1e6
    minutes = 1 if to_next >= 8 else 2
    end = (local.replace(second=0, microsecond=0) + timedelta(minutes=minutes)).astimezone(UTC)
    return (minute - 1) % 1440, (minute + minutes) % 1440, end


@pytest.mark.timeout(180)
async def test_marketing_waits_for_the_end_of_the_recipients_quiet_hours_and_transactional_does_not(
    mesh: Mesh,
):
    # A zone of its own (UTC+05:45): the window is on the recipient's clock.
    zone = ZoneInfo("Asia/Kathmandu")
    start, end, window_end = quiet_window_ending_soon(zone, utcnow())
    await upsert(mesh, "night-owl", timezone="Asia/Kathmandu", quiet=(start, end))

    promo = await mesh.submit(inapp_intent("quiet-promo", users=["night-owl"], title="Promo"))
    receipt = await mesh.submit(
        inapp_intent(
            "quiet-receipt",
            users=["night-owl"],
            kind=intent_pb2.KIND_TRANSACTIONAL,
            category="receipt",
            title="Receipt",
        )
    )

    held = await reaches(mesh, promo, "night-owl", S.DELIVERY_STATE_SCHEDULED)
    assert current(held) == ("eligibility", S.DELIVERY_STATE_SCHEDULED, "quiet_hours")
    assert from_timestamp(held.current.not_before) == window_end
    [row] = await eventually(lambda: deferred(mesh, promo), SETTLE_S, "the promo was never held")
    assert (row.stage, row.reason, from_timestamp(row.due_at)) == (
        "eligibility",
        "quiet_hours",
        window_end,
    )

    passed = by_delivery(await mesh.completed(receipt))[("night-owl", INAPP)]
    assert current(passed) == ("inapp", S.DELIVERY_STATE_SENT, "sent")
    assert "scheduled" not in {state for _, state in history(passed)}
    assert from_timestamp(passed.current.at) < window_end

    wait_s = (window_end - utcnow()).total_seconds() + SETTLE_S
    sent = await reaches(mesh, promo, "night-owl", S.DELIVERY_STATE_SENT, wait_s)
    assert history(sent) == [
        ("profile", "planned"),
        ("eligibility", "quiet_hours"),
        ("eligibility", "allowed"),
        ("frequency", "no_cap_policy"),
        ("inapp", "sent"),
    ]
    # Released when the window ended: not before, and not a poll interval late.
    released = from_timestamp(decision(sent, "eligibility", S.DELIVERY_STATE_PENDING).at)
    assert window_end <= released < window_end + timedelta(seconds=1.5)
    assert from_timestamp(sent.current.at) >= window_end
    assert await inbox_titles(mesh, "night-owl") == ["Promo", "Receipt"]
