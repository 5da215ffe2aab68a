"""Templates' tables and queries. They live in intake's database: intake owns
content, and resolves template intents against these tables at submit.

`templates` holds one row per (tenant, template id): the latest version
number and whether it was deleted. `template_versions` holds every version,
immutable, as a serialized `Template`. A delete keeps the versions, so a
later put continues the numbering and a number never means two contents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sendmesh.templates.v1 import templates_pb2
from sqlalchemy import LargeBinary, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Column, Field, SQLModel, col

from shared.clock import to_timestamp
from shared.db import table_of, utc_field, write

Template = templates_pb2.Template


class TemplateRow(SQLModel, table=True):
    __tablename__ = "templates"
    tenant_id: str = Field(primary_key=True)
    template_id: str = Field(primary_key=True)
    latest_version: int
    # The latest version's category, for listing by category.
    category: str = ""
    updated_at: datetime = utc_field()
    deleted_at: datetime | None = utc_field(nullable=True)


class TemplateVersionRow(SQLModel, table=True):
    __tablename__ = "template_versions"
    tenant_id: str = Field(primary_key=True)
    template_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    created_at: datetime = utc_field()
    # The Template as stored (serialized protobuf, version and created_at set).
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


TABLES = (TemplateRow, TemplateVersionRow)

# (template_id, version); version 0 means the latest.
Ref = tuple[str, int]


@dataclass(frozen=True)
class Resolved:
    """What a set of references resolved to: the versions found, and which
    template ids exist (to tell an unknown template from an unknown version)."""

    templates: dict[Ref, Template]
    existing: set[str]


def _live(tenant: str) -> ColumnElement[bool]:
    return and_(col(TemplateRow.tenant_id) == tenant, col(TemplateRow.deleted_at).is_(None))


def _joined() -> ColumnElement[bool]:
    return and_(
        col(TemplateVersionRow.tenant_id) == col(TemplateRow.tenant_id),
        col(TemplateVersionRow.template_id) == col(TemplateRow.template_id),
    )


class TemplateStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def put(self, tenant: str, template: Template, now: datetime) -> Template:
        """Store `template` as the next version of its id; returns it as stored."""
        async with write(self.engine) as conn:
            number = await self._next_version(conn, tenant, template, now)
            stored = Template()
            stored.CopyFrom(template)
            stored.version = number
            stored.created_at.CopyFrom(to_timestamp(now))
            row = {
                "tenant_id": tenant,
                "template_id": template.template_id,
                "version": number,
                "created_at": now,
                "body": stored.SerializeToString(),
            }
            await conn.execute(table_of(TemplateVersionRow).insert(), [row])
        return stored

    @staticmethod
    async def _next_version(
        conn: AsyncConnection, tenant: str, template: Template, now: datetime
    ) -> int:
        # One upsert takes the number: concurrent puts of one id queue on the
        # row (PostgreSQL) or the write lock (SQLite) and get distinct versions.
        table = table_of(TemplateRow)
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table).values(
            tenant_id=tenant,
            template_id=template.template_id,
            latest_version=1,
            category=template.category,
            updated_at=now,
            deleted_at=None,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.template_id],
            set_={
                "latest_version": table.c.latest_version + 1,
                "category": stmt.excluded.category,
                "updated_at": stmt.excluded.updated_at,
                "deleted_at": None,
            },
        ).returning(table.c.latest_version)
        return int((await conn.execute(stmt)).scalar_one())

    async def get(self, tenant: str, template_id: str, version: int = 0) -> Template | None:
        """One version (0: the latest) of a template that is not deleted."""
        found = await self.resolve(tenant, [(template_id, version)])
        return found.templates.get((template_id, version))

    async def resolve(self, tenant: str, refs: Iterable[Ref]) -> Resolved:
        """Many references in two queries: the templates, then the versions."""
        wanted = set(refs)
        ids = sorted({template_id for template_id, _ in wanted})
        if not ids:
            return Resolved({}, set())
        async with self.engine.connect() as conn:
            heads = await conn.execute(
                select(col(TemplateRow.template_id), col(TemplateRow.latest_version)).where(
                    _live(tenant), col(TemplateRow.template_id).in_(ids)
                )
            )
            latest = {template_id: number for template_id, number in heads.all()}
            # Each reference as the number it stands for (0: the latest).
            numbers = {(i, v): (i, v or latest[i]) for i, v in wanted if i in latest}
            if not numbers:
                return Resolved({}, set(latest))
            rows = await conn.execute(
                select(
                    col(TemplateVersionRow.template_id),
                    col(TemplateVersionRow.version),
                    col(TemplateVersionRow.body),
                ).where(
                    col(TemplateVersionRow.tenant_id) == tenant,
                    or_(
                        *(
                            and_(
                                col(TemplateVersionRow.template_id) == i,
                                col(TemplateVersionRow.version) == v,
                            )
                            for i, v in set(numbers.values())
                        )
                    ),
                )
            )
            by_number = {(i, v): Template.FromString(body) for i, v, body in rows.all()}
        templates = {ref: by_number[n] for ref, n in numbers.items() if n in by_number}
        return Resolved(templates, set(latest))

    async def list_latest(
        self, tenant: str, category: str, after: str, limit: int
    ) -> list[Template]:
        """The latest version of each live template, by id, after `after`."""
        stmt = (
            select(col(TemplateVersionRow.body))
            .join(TemplateRow, _joined())
            .where(
                _live(tenant),
                col(TemplateVersionRow.version) == col(TemplateRow.latest_version),
                col(TemplateRow.template_id) > after,
            )
            .order_by(col(TemplateRow.template_id))
            .limit(limit)
        )
        if category:
            stmt = stmt.where(col(TemplateRow.category) == category)
        async with self.engine.connect() as conn:
            return [Template.FromString(b) for b in (await conn.execute(stmt)).scalars()]

    async def list_versions(
        self, tenant: str, template_id: str, before: int | None, limit: int
    ) -> list[Template] | None:
        """Versions newest first, below `before`; None when the template is unknown or deleted."""
        async with self.engine.connect() as conn:
            live = await conn.execute(
                select(col(TemplateRow.template_id)).where(
                    _live(tenant), col(TemplateRow.template_id) == template_id
                )
            )
            if live.first() is None:
                return None
            stmt = (
                select(col(TemplateVersionRow.body))
                .where(
                    col(TemplateVersionRow.tenant_id) == tenant,
                    col(TemplateVersionRow.template_id) == template_id,
                )
                .order_by(col(TemplateVersionRow.version).desc())
                .limit(limit)
            )
            if before is not None:
                stmt = stmt.where(col(TemplateVersionRow.version) < before)
            return [Template.FromString(b) for b in (await conn.execute(stmt)).scalars()]

    async def delete(self, tenant: str, template_id: str, now: datetime) -> bool:
        """Marks a live template deleted; False when there was none."""
        stmt = (
            update(TemplateRow)
            .where(_live(tenant), col(TemplateRow.template_id) == template_id)
            .values(deleted_at=now, updated_at=now)
        )
        async with write(self.engine) as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)
