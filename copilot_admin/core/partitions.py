"""Monthly range partitions of a PostgreSQL table (docs/SCALING.md, section 2).

Shared by the tables that grow with calls: the usage records (`usage/partitions.py`) and the
audit entries (`audit/partitions.py`). A table partitioned by month of `created_at` keeps
each UTC calendar month's rows in `<table>_YYYY_MM` (bounds `[month, next month)`), plus a
`<table>_default` partition for anything outside them, which should stay empty: the
maintenance tasks create the months ahead before they begin (`partitions_ensure`).

Everything here is a no-op on other databases (the SQLite of development), where the tables
stay plain tables. Table and partition names are ours, never user input.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

MONTHS_AHEAD = 3


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(table: str, month: dt.date) -> str:
    return f"{table}_{month:%Y_%m}"


def default_partition_name(table: str) -> str:
    return f"{table}_default"


def month_bounds_sql(month: dt.date) -> str:
    """`FROM (...) TO (...)` of one month, in UTC like every stored time."""
    return f"FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{next_month(month):%Y-%m-%d} 00:00:00+00')"


def partition_create_sql(table: str, month: dt.date) -> str:
    """The DDL of one month's partition."""
    return (
        f'CREATE TABLE IF NOT EXISTS "{partition_name(table, month)}" PARTITION OF "{table}" '
        f"FOR VALUES {month_bounds_sql(month)}"
    )


def months_between(first: dt.date, last: dt.date) -> list[dt.date]:
    """The month starts from `first`'s month to `last`'s, both included."""
    month, last, months = month_start(first), month_start(last), []
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def is_partitioned(table: str, *, using=None) -> bool:
    using = using or connection
    if using.vendor != "postgresql":
        return False
    with using.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [table])
        return cursor.fetchone() is not None


@dataclass(frozen=True)
class Partition:
    name: str
    month: dt.date | None  # None: the default partition


def partitions_of(table: str) -> list[Partition]:
    """The table's partitions, months in order, then the default one (if any)."""
    if not is_partitioned(table):
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [table],
        )
        rows = cursor.fetchall()
    months, default = [], []
    prefix = f"{table}_"
    for name, bound in rows:
        if bound == "DEFAULT":
            default.append(Partition(name, None))
            continue
        try:
            month = dt.datetime.strptime(name[len(prefix):], "%Y_%m").date()
        except ValueError:
            continue  # not one of ours: left alone
        months.append(Partition(name, month))
    return sorted(months, key=lambda p: p.month) + default


def partitions_ensure(
    table: str,
    *,
    today: dt.date | None = None,
    months_ahead: int = MONTHS_AHEAD,
    after_create: Callable[[str], None] | None = None,
) -> list[str]:
    """Create the partitions of this month and the next `months_ahead` months that are missing
    (with `after_create(name)` run in the same transaction: per-partition indexes); returns
    their names. Idempotent; a failure is logged (rows still land in the default partition),
    never raised into the maintenance task."""
    if not is_partitioned(table):
        return []
    month = month_start(today or timezone.now().date())
    created = []
    for _ in range(months_ahead + 1):
        name = partition_name(table, month)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s)", [name])
                if cursor.fetchone()[0] is None:
                    cursor.execute(partition_create_sql(table, month))
                    if after_create is not None:
                        after_create(name)
                    created.append(name)
        except DatabaseError:
            logger.exception("Creating the partition %s failed.", name)
        month = next_month(month)
    return created


def partition_is_empty(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT 1 FROM "{name}" LIMIT 1')
        return cursor.fetchone() is None
