"""One model row inserted with a statement built once, for the copilot call's bookkeeping.

Every copilot call inserts a usage record and an audit entry. Through the ORM (`create`,
`bulk_create`) each insert compiles its SQL again, field by field, on every call: at hundreds
of calls a second that compilation is a measurable share of the web process's CPU
(`make bench`). `RowInsert` builds the `INSERT` of a model once per database vendor, from the
model's own fields, and per call only converts the instance's values the way the ORM does
(`pre_save`, then `get_db_prep_save`: defaults, `auto_now_add`, JSON adaptation).

It sends no model signals, like `bulk_create`, and it is for plain single-table models with an
auto primary key (set on the instance from `RETURNING`). Its SQL is available as text
(`sql(...)`, with named parameters) so that a caller can put the insert in a larger statement,
as the usage record's does with its roll-ups (`usage.rollups`).
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.models.fields import AutoFieldMixin


class RowInsert:
    """The `INSERT` of one row of `model` (see the module docstring)."""

    def __init__(self, model: type[models.Model], *, prefix: str = "") -> None:
        self.model = model
        self.prefix = prefix
        self.fields = [
            field for field in model._meta.concrete_fields
            if not (field.primary_key and isinstance(field, AutoFieldMixin))
        ]
        self.pk = model._meta.pk
        self._sql: dict[str, str] = {}

    def sql(self, connection: Any) -> str:
        """`INSERT INTO <table> (<columns>) VALUES (%(<prefix><attname>)s, ...)` (and
        `RETURNING <pk>` where the database can), built once per vendor."""
        sql = self._sql.get(connection.vendor)
        if sql is None:
            quote = connection.ops.quote_name
            columns = ", ".join(quote(field.column) for field in self.fields)
            values = ", ".join(f"%({self.prefix}{field.attname})s" for field in self.fields)
            sql = f"INSERT INTO {quote(self.model._meta.db_table)} ({columns}) VALUES ({values})"
            if connection.features.can_return_columns_from_insert:
                sql += f" RETURNING {quote(self.pk.column)}"
            self._sql[connection.vendor] = sql
        return sql

    def params(self, obj: models.Model, connection: Any) -> dict[str, Any]:
        """The instance's values as the ORM would save them, keyed as in `sql`."""
        return {
            f"{self.prefix}{field.attname}": field.get_db_prep_save(field.pre_save(obj, True), connection)
            for field in self.fields
        }

    def saved(self, obj: models.Model, pk: Any, *, using: str) -> models.Model:
        """Mark `obj` as the row just inserted with primary key `pk`."""
        setattr(obj, self.pk.attname, pk)
        obj._state.adding = False
        obj._state.db = using
        return obj

    def insert(self, obj: models.Model, *, using: str = "default") -> models.Model:
        """Insert `obj` in one statement (in the caller's transaction, if any); returns it saved."""
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql(connection), self.params(obj, connection))
            if connection.features.can_return_columns_from_insert:
                pk = cursor.fetchone()[0]
            else:
                pk = connection.ops.last_insert_id(cursor, self.model._meta.db_table, self.pk.column)
        return self.saved(obj, pk, using=using)
