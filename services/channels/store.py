"""The channel worker's own records: which deliveries it sent, which intents
were cancelled. Every query takes a whole batch: one round trip per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import DateTime, Table, Update, bindparam, case, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import Field, SQLModel

from shared.clock import utcnow
from shared.db import TupleStatement, driver_value, insert_ignore, write

# (tenant_id, delivery_id) and (tenant_id, intent_id)
DeliveryKey = tuple[str, str]
IntentKey = tuple[str, str]


class DeliveryRecord(SQLModel, table=True):
    """One delivery as this worker saw it: sending, sent, failed or dead."""

    __tablename__ = "channel_deliveries"

    tenant_id: str = Field(primary_key=True, max_length=64)
    delivery_id: str = Field(primary_key=True, max_length=64)
    intent_id: str = Field(max_length=64)
    state: str = Field(max_length=16)
    attempts: int = 0
    provider: str = Field(default="", max_length=64)
    provider_message_id: str = Field(default="", max_length=256)
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))


class CancelledIntent(SQLModel, table=True):
    """An intent whose deliveries must not be sent any more."""

    __tablename__ = "channel_cancelled_intents"

    tenant_id: str = Field(primary_key=True, max_length=64)
    intent_id: str = Field(primary_key=True, max_length=64)
    cancelled_at: datetime = Field(sa_type=DateTime(timezone=True))


TABLES: tuple[type[SQLModel], ...] = (DeliveryRecord, CancelledIntent)


# NamedTuples, not dataclasses: one of each is made per delivery on a fan-out.
class Claim(NamedTuple):
    tenant_id: str
    delivery_id: str
    intent_id: str
    # Set when the delivery was replayed from dead letters: a record last
    # written before then starts a fresh attempt budget.
    replayed_at: datetime | None = None


class Outcome(NamedTuple):
    tenant_id: str
    delivery_id: str
    state: str
    provider_message_id: str = ""


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


def _insert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def cancelled_intents(engine: AsyncEngine, keys: Iterable[IntentKey]) -> set[IntentKey]:
    """Which of `keys` (tenant, intent) were cancelled."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    table = _table(CancelledIntent)
    query = select(table.c.tenant_id, table.c.intent_id).where(
        tuple_(table.c.tenant_id, table.c.intent_id).in_(wanted)
    )
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return {(r.tenant_id, r.intent_id) for r in rows}


async def record_cancellations(
    engine: AsyncEngine, keys: Iterable[IntentKey], at: datetime | None = None
) -> None:
    """Remember cancelled intents; a repeated cancellation changes nothing."""
    when = at or utcnow()
    rows = [{"tenant_id": t, "intent_id": i, "cancelled_at": when} for t, i in set(keys)]
    if not rows:
        return
    async with write(engine) as conn:
        await conn.execute(insert_ignore(conn, CancelledIntent), rows)


async def claim(
    engine: AsyncEngine, claims: Sequence[Claim], provider: str
) -> dict[DeliveryKey, int]:
    """Mark deliveries `sending` with one more attempt; returns their attempt counts.

    A delivery already `sent` is left alone and missing from the answer: that
    is the dedup. A `dead` one (replayed from dead letters) starts again at 1,
    and so does any other unsent one claimed for the first time since its
    replay (`replayed_at` after the record's last write: it was dead-lettered
    by the consumer, not by this worker's own last attempt). `claims` must not
    repeat a delivery (PostgreSQL refuses to update one row twice in a statement).
    """
    if not claims:
        return {}
    table = _table(DeliveryRecord)
    replays = [
        {"b_tenant": c.tenant_id, "b_delivery": c.delivery_id, "b_replayed": c.replayed_at}
        for c in claims
        if c.replayed_at is not None
    ]
    now = utcnow()
    rows = [
        {
            "tenant_id": c.tenant_id,
            "delivery_id": c.delivery_id,
            "intent_id": c.intent_id,
            "state": "sending",
            "attempts": 1,
            "provider": provider,
            "provider_message_id": "",
            "updated_at": now,
        }
        for c in claims
    ]
    async with write(engine) as conn:
        if replays:
            await conn.execute(_restart_replayed(table), replays)
        stmt = _insert(conn, table)
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.delivery_id],
            set_={
                "state": "sending",
                # A dead delivery replayed from dead letters gets a fresh budget.
                "attempts": case((table.c.state == "dead", 1), else_=table.c.attempts + 1),
                "provider": stmt.excluded.provider,
                "updated_at": stmt.excluded.updated_at,
            },
            where=table.c.state != "sent",
        ).returning(table.c.tenant_id, table.c.delivery_id, table.c.attempts)
        result = await conn.execute(upsert, rows)
        return {(r.tenant_id, r.delivery_id): r.attempts for r in result}


def _restart_replayed(table: Table) -> Update:
    """Attempts back to 0 (the claim makes it 1) for unsent records last
    written before their replay; one statement, executed for many rows."""
    return (
        table.update()
        .where(table.c.tenant_id == bindparam("b_tenant"))
        .where(table.c.delivery_id == bindparam("b_delivery"))
        .where(table.c.state != "sent")
        .where(table.c.updated_at < bindparam("b_replayed", type_=table.c.updated_at.type))
        .values(attempts=0)
    )


def _record_outcomes(_: Dialect) -> Update:
    table = _table(DeliveryRecord)
    return (
        table.update()
        .where(table.c.tenant_id == bindparam("b_tenant"))
        .where(table.c.delivery_id == bindparam("b_delivery"))
        .values(
            state=bindparam("b_state"),
            provider_message_id=bindparam("b_message"),
            updated_at=bindparam("b_at"),
        )
    )


_RECORD_OUTCOMES = TupleStatement(
    _record_outcomes, ("b_state", "b_message", "b_at", "b_tenant", "b_delivery")
)


async def record_outcomes(engine: AsyncEngine, outcomes: Sequence[Outcome]) -> None:
    """Store each delivery's new state, in one statement for the batch."""
    if not outcomes:
        return
    async with write(engine) as conn:
        now = driver_value(conn.dialect, _table(DeliveryRecord).c.updated_at, utcnow())
        await _RECORD_OUTCOMES.run(
            conn,
            [(o.state, o.provider_message_id, now, o.tenant_id, o.delivery_id) for o in outcomes],
        )


async def delivery_records(
    engine: AsyncEngine, keys: Iterable[DeliveryKey]
) -> list[DeliveryRecord]:
    """The records of the given deliveries (for status views and tests)."""
    wanted = list(set(keys))
    if not wanted:
        return []
    table = _table(DeliveryRecord)
    query = select(table).where(tuple_(table.c.tenant_id, table.c.delivery_id).in_(wanted))
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [DeliveryRecord.model_validate(dict(r._mapping)) for r in rows]
