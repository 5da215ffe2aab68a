"""TupleStatement and DriverTimes write what SQLAlchemy's own path would write.

The hot paths skip SQLAlchemy's per-row work, so what they store must read
back, compare and index exactly like rows written through `conn.execute`,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import bindparam, select
from sqlmodel import Field, SQLModel

from shared.db import (
    DriverTimes,
    TupleStatement,
    driver_value,
    insert_ignore,
    table_of,
    utc_field,
    write,
)


class Tick(SQLModel, table=True):
    __tablename__ = "tuple_insert_ticks"
    name: str = Field(primary_key=True)
    size: int
    at: datetime = utc_field()
    until: datetime | None = utc_field(nullable=True)


INSERT = TupleStatement(
    lambda dialect: insert_ignore(dialect, Tick), ("name", "size", "at", "until")
)


def stamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


async def test_rows_read_back_and_compare_like_rows_written_the_usual_way(store_engine):
    engine = await store_engine([Tick])
    times = DriverTimes(engine.dialect)
    # A whole second: naive formatting would drop the microseconds and sort wrongly.
    whole = datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC)
    later = datetime(2026, 3, 29, 1, 0, 0, 250_000, tzinfo=UTC)
    async with write(engine) as conn:
        await INSERT.run(
            conn,
            [
                ("a", 1, times.driver(stamp(whole)), None),
                ("b", 2, times.driver(stamp(later)), times.driver(stamp(whole))),
                ("a", 9, times.driver(stamp(later)), None),  # a conflict: ignored
            ],
        )
        await conn.execute(insert_ignore(conn, Tick), [{"name": "c", "size": 3, "at": whole}])
    table = table_of(Tick)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(table).order_by(table.c.at, table.c.name))).all()
        at_whole = (await conn.execute(select(table.c.name).where(table.c.at == whole))).all()
    assert [(r.name, r.size, r.at, r.until) for r in rows] == [
        ("a", 1, whole, None),
        ("c", 3, whole, None),
        ("b", 2, later, whole),
    ]
    assert sorted(r.name for r in at_whole) == ["a", "c"]


async def test_a_timestamp_is_converted_once_per_value(store_engine):
    engine = await store_engine([Tick])
    times = DriverTimes(engine.dialect)
    first, again = stamp(datetime(2026, 1, 1, tzinfo=UTC)), stamp(datetime(2026, 1, 1, tzinfo=UTC))
    assert times.driver(first) is times.driver(again)
    assert times.aware(first) == datetime(2026, 1, 1, tzinfo=UTC)


async def test_columns_out_of_the_tables_order_are_refused(store_engine):
    engine = await store_engine([Tick])
    wrong = TupleStatement(
        lambda dialect: insert_ignore(dialect, Tick), ("size", "name", "at", "until")
    )
    with pytest.raises(ValueError, match="do not match"):
        async with write(engine) as conn:
            await wrong.run(conn, [(1, "a", None, None)])


async def test_an_update_takes_its_set_values_then_its_where_values(store_engine):
    engine = await store_engine([Tick])
    table = table_of(Tick)
    resize = TupleStatement(
        lambda _: (
            table.update()
            .where(table.c.name == bindparam("b_name"))
            .values(size=bindparam("b_size"), at=bindparam("b_at"))
        ),
        ("b_size", "b_at", "b_name"),
    )
    start, moved = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    async with write(engine) as conn:
        await conn.execute(
            insert_ignore(conn, Tick), [{"name": n, "size": 0, "at": start} for n in "ab"]
        )
        at = driver_value(conn.dialect, table.c.at, moved)
        await resize.run(conn, [(7, at, "a"), (8, at, "nobody")])
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(table.c.name, table.c.size, table.c.at).order_by(table.c.name)
            )
        ).all()
    assert [tuple(r) for r in rows] == [("a", 7, moved), ("b", 0, start)]
