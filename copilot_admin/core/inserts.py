"""One model row inserted with a statement built once, for the copilot call's bookkeeping.

Every copilot call inserts a usage record and an audit entry. Through the ORM (`create`,
`bulk_create`) each insert compiles its SQL again, field by field, on every call: at hundreds
of calls a second that compilation is a measurable share of the web process's CPU
(`make bench`). `RowInsert` builds the `INSERT` of a model once per database vendor, from the
model's own fields, and per call only converts the instance's values the way the ORM does
(`pre_save`, then `get_db_prep_save`: defaults, `auto_now_add`, JSON adaptation).

It sends no model signals, like `bulk_create`, and it is for plain single-table models with an
auto primary key (set on the instance from `RETURNING`). Its SQL is available as text
(`sql(...)`, with named parameters) so that a caller can put the insert in a larger statement.

`OneStatement` is that larger statement: rows of several models (and more data-modifying
CTEs, such as the usage roll-ups' upserts) written by one statement on PostgreSQL. Sent outside
a transaction it is a transaction of its own: the rows it locks stay locked while PostgreSQL
runs and commits it, never across another round trip to the web process (which, at hundreds of
calls in flight, waits for its thread to get the GIL back before it can send `COMMIT`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connections, models, transaction
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


class OneStatement:
    """Rows written together, in one statement on PostgreSQL (see the module docstring).

    - `insert(row, obj)`: `obj`'s row, through its model's `RowInsert` (whose prefix keeps its
      parameter names apart from the other parts');
    - `add(ctes, params, elsewhere=...)`: more data-modifying CTEs (`name AS (...)`, named
      parameters), and what does the same statement by statement on the other databases;
    - `first(fn)`: work that must commit with the rows (a strike): it runs first, and the
      whole in one transaction;
    - `on_commit(fn)`: runs once the rows are committed (`transaction.on_commit`).

    `execute()` writes it all: in the caller's transaction when there is one; else in one of
    its own, which on PostgreSQL without `first` work is the single statement itself. On the
    other databases the rows are inserted and `elsewhere` run in turn, in one transaction.
    Primary keys are set on the inserted objects.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[RowInsert, models.Model]] = []
        self._ctes: list[str] = []
        self._params: dict[str, Any] = {}
        self._elsewhere: list[Callable[[], Any]] = []
        self._first: list[Callable[[], Any]] = []
        self._on_commit: list[Callable[[], Any]] = []

    def insert(self, row: RowInsert, obj: models.Model) -> None:
        if any(other.prefix == row.prefix for other, _ in self._rows):
            raise ValueError(f"Two rows with the parameter prefix {row.prefix!r} in one statement.")
        self._rows.append((row, obj))

    def add(self, ctes: str, params: dict[str, Any], *, elsewhere: Callable[[], Any]) -> None:
        self._merge(params)
        self._ctes.append(ctes)
        self._elsewhere.append(elsewhere)

    def first(self, fn: Callable[[], Any]) -> None:
        self._first.append(fn)

    def on_commit(self, fn: Callable[[], Any]) -> None:
        self._on_commit.append(fn)

    def execute(self, *, using: str = "default") -> None:
        connection = connections[using]
        if self._first or connection.vendor != "postgresql":
            with transaction.atomic(using=using, savepoint=False):
                for fn in self._first:
                    fn()
                self._write(connection)
        else:
            self._write(connection)
        for fn in self._on_commit:
            transaction.on_commit(fn, using=using, robust=True)

    def _merge(self, params: dict[str, Any]) -> None:
        clash = params.keys() & self._params.keys()
        if clash:
            raise ValueError(f"Parameters named twice in one statement: {', '.join(sorted(clash))}.")
        self._params.update(params)

    def _write(self, connection: Any) -> None:
        if connection.vendor != "postgresql":
            for row, obj in self._rows:
                row.insert(obj, using=connection.alias)
            for fn in self._elsewhere:
                fn()
            return
        for row, obj in self._rows:
            self._merge(row.params(obj, connection))
        quote = connection.ops.quote_name
        ctes = [f"row_{n} AS ({row.sql(connection)})" for n, (row, _) in enumerate(self._rows)] + self._ctes
        pks = ", ".join(f"(SELECT {quote(row.pk.column)} FROM row_{n})" for n, (row, _) in enumerate(self._rows))
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {', '.join(ctes)}\nSELECT {pks or 'NULL'}", self._params)
            saved = cursor.fetchone()
        for (row, obj), pk in zip(self._rows, saved, strict=False):
            row.saved(obj, pk, using=connection.alias)
