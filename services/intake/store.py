"""Intake's tables and queries: intents, the outbox, delivery status.

Every hot query is batched: a group of submits is one transaction, a batch
of events is one read and two writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sendmesh.bus.v1 import envelope_pb2
from sqlalchemy import (
    Index,
    LargeBinary,
    Table,
    UniqueConstraint,
    and_,
    delete,
    exists,
    literal_column,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Column, Field, SQLModel, col

from services.intake import lifecycle
from services.intake.recent import RecentDecisions
from shared.bus.topology import EVENTS_CANCELLED_KEY as CANCELLED_KEY
from shared.bus.topology import PLAN as PLAN_STAGE
from shared.db import DriverTimes, TupleStatement, insert_ignore, table_of, utc_field, write


class IntentRow(SQLModel, table=True):
    __tablename__ = "intents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_intents_idempotency"),
        Index("ix_intents_cancel_key", "tenant_id", "cancel_key"),
    )
    intent_id: str = Field(primary_key=True)
    tenant_id: str
    idempotency_key: str
    fingerprint: str
    cancel_key: str | None = None
    accepted_at: datetime = utc_field()
    cancelled_at: datetime | None = utc_field(nullable=True)
    # The SendIntent as submitted (serialized protobuf).
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class OutboxRow(SQLModel, table=True):
    """Messages committed with the change they announce, not yet confirmed by the broker."""

    __tablename__ = "outbox"
    # Never reuse an id: the relay deletes by id what it published, and a
    # reused id would delete a newer row that was never published.
    __table_args__ = {"sqlite_autoincrement": True}
    id: int | None = Field(default=None, primary_key=True)
    intent_id: str = Field(index=True)
    # Logical target: WORK (routing key = stage) or EVENTS (routing key = event key).
    target: str
    routing_key: str
    type: str
    created_at: datetime = utc_field()
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


WORK, EVENTS = "work", "events"


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    intent_id: str
    target: str
    routing_key: str
    type: str
    body: bytes


class DeliveryRow(SQLModel, table=True):
    """The current state of one recipient on one channel."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_intent", "tenant_id", "intent_id"),)
    delivery_id: str = Field(primary_key=True)
    tenant_id: str
    intent_id: str
    user_id: str
    channel: int
    state: int
    reason: str
    stage: str
    detail: str = ""
    at: datetime = utc_field()
    # SCHEDULED decisions: when the delivery re-enters the pipeline.
    not_before: datetime | None = utc_field(nullable=True)


class DecisionRow(SQLModel, table=True):
    """Every decision reported for a delivery: the explanation of its state."""

    __tablename__ = "delivery_decisions"
    __table_args__ = (
        UniqueConstraint("delivery_id", "stage", "state", name="uq_decision"),
        Index("ix_decisions_intent", "tenant_id", "intent_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    intent_id: str
    delivery_id: str
    stage: str
    state: int
    reason: str
    detail: str = ""
    at: datetime = utc_field()
    not_before: datetime | None = utc_field(nullable=True)


TABLES = (IntentRow, OutboxRow, DeliveryRow, DecisionRow)


@dataclass(frozen=True)
class NewIntent:
    intent_id: str
    tenant_id: str
    idempotency_key: str
    fingerprint: str
    cancel_key: str | None
    accepted_at: datetime
    payload: bytes
    envelope: bytes
    envelope_type: str
    # The intent's kind, for the received-intents metric.
    kind: int = 0


@dataclass(frozen=True)
class Stored:
    """What happened to one NewIntent: stored, a replay of an earlier one, or a conflict."""

    intent_id: str
    accepted_at: datetime
    duplicate: bool = False
    conflict: bool = False
    # Set when this call created the intent: the row for the relay to publish.
    outbox: OutboxMessage | None = None


class IntakeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.recent = RecentDecisions()

    async def store_intents(self, items: Sequence[NewIntent]) -> list[Stored]:
        """Store intents and their outbox rows in one transaction, idempotently.

        Two statements when every key is new; a key seen before (or won by
        another replica a moment ago) costs one more read.
        """
        fresh: dict[tuple[str, str], NewIntent] = {}
        for item in items:
            fresh.setdefault((item.tenant_id, item.idempotency_key), item)
        async with write(self.engine) as conn:
            created = await self._insert_intents(conn, list(fresh.values()))
            outbox = await self._insert_outbox(
                conn, [i for i in fresh.values() if i.intent_id in created]
            )
            known = {
                (i.tenant_id, i.idempotency_key): (i.intent_id, i.fingerprint, i.accepted_at)
                for i in fresh.values()
                if i.intent_id in created
            }
            missing = [i for i in items if (i.tenant_id, i.idempotency_key) not in known]
            if missing:
                known.update(await self._existing(conn, missing))
        return [self._outcome(item, known, outbox) for item in items]

    @staticmethod
    def _outcome(
        item: NewIntent,
        known: dict[tuple[str, str], tuple[str, str, datetime]],
        outbox: dict[str, OutboxMessage],
    ) -> Stored:
        intent_id, fingerprint, accepted_at = known[(item.tenant_id, item.idempotency_key)]
        if intent_id == item.intent_id:
            return Stored(intent_id, accepted_at, outbox=outbox.get(intent_id))
        if fingerprint != item.fingerprint:
            return Stored(intent_id, accepted_at, conflict=True)
        return Stored(intent_id, accepted_at, duplicate=True)

    async def _existing(
        self, conn: AsyncConnection, items: Sequence[NewIntent]
    ) -> dict[tuple[str, str], tuple[str, str, datetime]]:
        found: dict[tuple[str, str], tuple[str, str, datetime]] = {}
        for tenant in {i.tenant_id for i in items}:
            keys = list({i.idempotency_key for i in items if i.tenant_id == tenant})
            stmt = select(
                col(IntentRow.intent_id),
                col(IntentRow.idempotency_key),
                col(IntentRow.fingerprint),
                col(IntentRow.accepted_at),
            ).where(col(IntentRow.tenant_id) == tenant, col(IntentRow.idempotency_key).in_(keys))
            for intent_id, key, fp, accepted in (await conn.execute(stmt)).all():
                found[(tenant, key)] = (intent_id, fp, accepted)
        return found

    async def _insert_intents(self, conn: AsyncConnection, items: list[NewIntent]) -> set[str]:
        """Insert, skipping keys that exist; returns the ids really created."""
        rows = [
            {
                "intent_id": i.intent_id,
                "tenant_id": i.tenant_id,
                "idempotency_key": i.idempotency_key,
                "fingerprint": i.fingerprint,
                "cancel_key": i.cancel_key,
                "accepted_at": i.accepted_at,
                "payload": i.payload,
            }
            for i in items
        ]
        stmt = insert_ignore(conn, IntentRow).returning(table_of(IntentRow).c.intent_id)
        return set((await conn.execute(stmt, rows)).scalars())

    async def _insert_outbox(
        self, conn: AsyncConnection, items: list[NewIntent]
    ) -> dict[str, OutboxMessage]:
        if not items:
            return {}
        now = items[0].accepted_at
        rows = [
            {
                "intent_id": i.intent_id,
                "target": WORK,
                "routing_key": PLAN_STAGE,
                "type": i.envelope_type,
                "body": i.envelope,
                "created_at": now,
            }
            for i in items
        ]
        return {m.intent_id: m for m in await _insert_returning(conn, rows)}

    # -- the outbox ---------------------------------------------------------

    async def pending_outbox(
        self, limit: int, older_than: datetime | None = None
    ) -> list[OutboxMessage]:
        """Unpublished rows, oldest first; `older_than` leaves fresh ones to the hand-over."""
        table = table_of(OutboxRow)
        stmt = select(*_outbox_columns(table)).order_by(table.c.id).limit(limit)
        if older_than is not None:
            stmt = stmt.where(table.c.created_at < older_than)
        async with self.engine.connect() as conn:
            return [OutboxMessage(*row) for row in (await conn.execute(stmt)).all()]

    async def delete_outbox(self, ids: Sequence[int]) -> None:
        async with write(self.engine) as conn:
            await conn.execute(delete(OutboxRow).where(col(OutboxRow.id).in_(ids)))

    async def outbox_backlog(self) -> int:
        from sqlalchemy import func

        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(OutboxRow))).scalar_one()
            )

    # -- reading and cancelling --------------------------------------------

    async def get_intent(self, tenant_id: str, intent_id: str) -> IntentRow | None:
        async with self.engine.connect() as conn:
            stmt = select(IntentRow).where(
                col(IntentRow.tenant_id) == tenant_id, col(IntentRow.intent_id) == intent_id
            )
            row = (await conn.execute(stmt)).first()
            return IntentRow.model_validate(row._mapping) if row else None

    async def deliveries(
        self, tenant_id: str, intent_id: str
    ) -> tuple[list[DeliveryRow], list[DecisionRow]]:
        async with self.engine.connect() as conn:
            current = await conn.execute(
                select(DeliveryRow)
                .where(
                    col(DeliveryRow.tenant_id) == tenant_id, col(DeliveryRow.intent_id) == intent_id
                )
                .order_by(col(DeliveryRow.user_id), col(DeliveryRow.channel))
            )
            history = await conn.execute(
                select(DecisionRow)
                .where(
                    col(DecisionRow.tenant_id) == tenant_id, col(DecisionRow.intent_id) == intent_id
                )
                .order_by(col(DecisionRow.at), col(DecisionRow.id))
            )
            return (
                [DeliveryRow.model_validate(r._mapping) for r in current.all()],
                [DecisionRow.model_validate(r._mapping) for r in history.all()],
            )

    async def cancel(
        self,
        tenant_id: str,
        now: datetime,
        announce: Callable[[str], tuple[str, bytes]],
        *,
        intent_id: str = "",
        cancel_key: str = "",
    ) -> list[OutboxMessage]:
        """Mark open intents cancelled, drop their unpublished envelopes, and queue
        the announcement (`announce(intent_id)` -> (type, body)) in the same
        transaction, so every stage hears of it even if we crash right after.
        Returns the announcements (one per cancelled intent)."""
        async with write(self.engine) as conn:
            cond = [col(IntentRow.tenant_id) == tenant_id, col(IntentRow.cancelled_at).is_(None)]
            cond.append(
                col(IntentRow.intent_id) == intent_id
                if intent_id
                else col(IntentRow.cancel_key) == cancel_key
            )
            cond.append(_not_completed())
            ids = list(
                (await conn.execute(select(col(IntentRow.intent_id)).where(*cond))).scalars()
            )
            if not ids:
                return []
            await conn.execute(
                update(IntentRow).where(col(IntentRow.intent_id).in_(ids)).values(cancelled_at=now)
            )
            await conn.execute(delete(OutboxRow).where(col(OutboxRow.intent_id).in_(ids)))
            rows = []
            for cancelled in ids:
                msg_type, body = announce(cancelled)
                rows.append(
                    {
                        "intent_id": cancelled,
                        "target": EVENTS,
                        "type": msg_type,
                        "routing_key": CANCELLED_KEY,
                        "body": body,
                        "created_at": now,
                    }
                )
            return await _insert_returning(conn, rows)

    # -- events ---------------------------------------------------------------

    async def apply_events(self, events: Sequence[envelope_pb2.DeliveryEvent]) -> None:
        """Fold a batch of events into current state and history: two statements."""
        if not events:
            return
        times = DriverTimes(self.engine.dialect)
        latest: dict[str, tuple[envelope_pb2.DeliveryEvent, datetime]] = {}
        for event in events:
            at = times.aware(event.decision.at)
            seen = latest.get(event.delivery_id)
            if seen is None or lifecycle.supersedes(
                event.decision.state, at, seen[0].decision.state, seen[1]
            ):
                latest[event.delivery_id] = (event, at)
        history, keys = _history(events, times, self.recent)
        async with write(self.engine) as conn:
            await _CURRENT.run(conn, [_current_row(e, times) for e, _ in latest.values()])
            await _HISTORY.run(conn, history)
        self.recent.remember(keys)


def _not_completed() -> ColumnElement[bool]:
    """An intent still in play: no delivery known yet, or one not final."""
    d = table_of(DeliveryRow)
    mine = d.c.intent_id == col(IntentRow.intent_id)
    is_open = and_(*(d.c.state != state for state in sorted(lifecycle.FINAL)))
    return or_(~exists().where(mine), exists().where(mine, is_open))


def _outbox_columns(table: Table) -> list[Column[Any]]:
    """In the order of OutboxMessage's fields."""
    c = table.c
    return [c.id, c.intent_id, c.target, c.routing_key, c.type, c.body]


async def _insert_returning(
    conn: AsyncConnection, rows: list[dict[str, object]]
) -> list[OutboxMessage]:
    table = table_of(OutboxRow)
    stmt = table.insert().returning(*_outbox_columns(table))
    return [OutboxMessage(*row) for row in (await conn.execute(stmt, rows)).all()]


def _current_row(event: envelope_pb2.DeliveryEvent, times: DriverTimes) -> tuple[Any, ...]:
    dec = event.decision
    return (
        event.delivery_id,
        event.tenant_id,
        event.intent_id,
        event.user_id,
        event.channel,
        dec.state,
        dec.reason,
        dec.stage,
        dec.detail,
        *times.decided(dec),
    )


def _upsert_current(dialect: Dialect) -> Insert:
    """Insert, or replace the current decision when `lifecycle.supersedes` says so.

    The rule lives in the statement itself, so replicas folding events for
    the same delivery at the same time cannot lose an update.
    """
    table = table_of(DeliveryRow)
    ins = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)
    new, cur = ins.excluded, table.c
    # Plain equalities with the states written out: an expanding IN cannot be
    # used with executemany, and bound constants would join the row's values.
    final: list[ColumnElement[Any]] = [literal_column(str(int(s))) for s in sorted(lifecycle.FINAL)]
    new_final = or_(*(new.state == s for s in final))
    cur_final = or_(*(cur.state == s for s in final))
    wins = or_(
        and_(new_final, not_(cur_final)), and_(or_(new_final, not_(cur_final)), new.at >= cur.at)
    )
    return ins.on_conflict_do_update(
        index_elements=[cur.delivery_id],
        set_={k: new[k] for k in ("state", "reason", "stage", "detail", "at", "not_before")},
        where=wins,
    )


_CURRENT = TupleStatement(
    _upsert_current,
    (
        "delivery_id",
        "tenant_id",
        "intent_id",
        "user_id",
        "channel",
        "state",
        "reason",
        "stage",
        "detail",
        "at",
        "not_before",
    ),
)
_HISTORY = TupleStatement(
    lambda dialect: insert_ignore(dialect, DecisionRow),
    (
        "tenant_id",
        "intent_id",
        "delivery_id",
        "stage",
        "state",
        "reason",
        "detail",
        "at",
        "not_before",
    ),
)


def _history(
    events: Sequence[envelope_pb2.DeliveryEvent], times: DriverTimes, recent: RecentDecisions
) -> tuple[list[tuple[Any, ...]], set[tuple[str, str, int]]]:
    """Every decision of the batch once, and the (delivery, stage, state) keys
    of those rows. Events carry their delivery's trail, so one delivery's
    earlier decisions come again with each later event; the first copy is the
    one the insert would keep (uq_decision), so dropping the rest here only
    saves converting and sending them. Trail entries `recent` knows to be
    stored are left out too; an event's own decision never is."""
    rows: list[tuple[Any, ...]] = []
    seen: set[tuple[str, str, int]] = set()
    for event in events:
        delivery_id = event.delivery_id
        own = event.decision
        for d in [*event.trail, own]:
            key = (delivery_id, d.stage, d.state)
            if key in seen or (d is not own and recent.stored(*key)):
                continue
            seen.add(key)
            rows.append(
                (
                    event.tenant_id,
                    event.intent_id,
                    delivery_id,
                    d.stage,
                    d.state,
                    d.reason,
                    d.detail,
                    *times.decided(d),
                )
            )
    return rows, seen
