"""On a SQLite file every write goes through one connection; reads keep the pool.

Writes spread over several connections made each one drop its page cache at
every batch (it had seen another connection's commit): about a tenth of intake's
CPU on a fan-out.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlmodel import Field, SQLModel

from shared import db


class Note(SQLModel, table=True):
    __tablename__ = "writer_notes"
    id: int = Field(primary_key=True)


async def connection_of(conn) -> int:
    return id((await conn.get_raw_connection()).driver_connection)


async def test_writes_share_one_connection_and_a_held_read_does_not_block_them(tmp_path):
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}")
    await db.create_tables(engine, [Note])
    table = db.table_of(Note)
    writers: set[int] = set()

    async def add(n: int) -> None:
        async with engine.connect() as conn:  # reads in between, as a service does
            await conn.execute(select(func.count()).select_from(table))
        async with db.write(engine) as conn:
            writers.add(await connection_of(conn))
            await conn.execute(table.insert().values(id=n))

    try:
        async with engine.connect() as reader:  # held open across the writes
            await asyncio.wait_for(asyncio.gather(*(add(n) for n in range(20))), 10)
            reading = await connection_of(reader)
            count = (await reader.execute(select(func.count()).select_from(table))).scalar()
        assert count == 20
        assert len(writers) == 1
        assert reading not in writers
    finally:
        await db.dispose(engine)
